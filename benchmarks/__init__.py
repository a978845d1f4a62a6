"""Side-by-side benchmarks of llmcache_django against langchain-community and the raw client."""

import warnings

# Importing langchain_community warns that it is being sunset; we know, it is the baseline.
warnings.filterwarnings("ignore", message=".*langchain-community. is being sunset")
