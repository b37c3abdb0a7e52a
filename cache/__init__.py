"""Redis: cache keys, the value codec, the result store and locks."""
