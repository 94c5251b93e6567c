"""Personal data over time: retention (anonymising departed residents) and a person's export."""
