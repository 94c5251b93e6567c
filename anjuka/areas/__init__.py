"""The area tree and its inherited occupancy policy."""
