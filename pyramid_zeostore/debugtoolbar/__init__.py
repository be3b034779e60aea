"""A pyramid_debugtoolbar panel: what a request did to each database."""
