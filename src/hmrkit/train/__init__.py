"""Training loops per method (SPIN so far) and the synthetic training sets they read."""
