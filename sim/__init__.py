"""What-if simulator: replays real trace arrivals through the router's own policy code and baselines."""
