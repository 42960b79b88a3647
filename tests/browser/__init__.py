"""Browser tests: the tutorial's notebooks opened in JupyterLab in Chromium (Playwright)."""
