"""Codec configuration parsers (no media decoding): what a stream's tracks are."""
