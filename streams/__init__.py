"""The wire: message schemas, codec, key names, and the Redis side of reading and writing."""
