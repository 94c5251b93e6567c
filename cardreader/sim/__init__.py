"""Simulated Anju e-Card chips (CPU and MIFARE Classic 1K) for tests and demos."""
