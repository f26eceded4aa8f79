"""The Textual terminal UI. It talks to a controller only through the public gRPC API."""
