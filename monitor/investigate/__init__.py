"""The notebooks' API: questions asked of the lake after an alert, and their figures."""
