"""The object browser in a real browser: Chromium driven by Selenium."""
