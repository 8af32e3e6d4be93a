"""The price tables of `review.cost`, one JSON file per cloud, and `refresh`, which regenerates them."""
