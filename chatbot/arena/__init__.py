"""The A/B arena: the vote store (``votes``), ratings fitted from votes (``ratings``) and the leaderboard table."""
