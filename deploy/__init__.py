"""Deploy and release of versioned model bundles and their cloud embeddings."""
