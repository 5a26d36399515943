"""Using trained models: the serflow command, serflow predict and serflow serve."""
