"""Cloud-neutral core of the platform: validated stack settings and the model derived from them."""
