"""The long-running service: the scheduler and the crawl and digest jobs it runs."""
