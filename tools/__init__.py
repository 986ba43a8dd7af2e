"""Development tools (offline Kubernetes checks); not part of the installed package."""
