"""City scale: legacy records in, and a synthetic city to test and measure with."""
