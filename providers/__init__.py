"""Cloud provider drivers: one small interface, a registry, and the simulated, AWS and DigitalOcean drivers."""
