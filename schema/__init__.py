"""The GraphQL schema (Strawberry types) and the ASGI application."""
