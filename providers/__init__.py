"""Cloud provider drivers: one small interface, a registry, and drivers for the simulated cloud, AWS and DigitalOcean."""
