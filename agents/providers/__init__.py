"""Chat and embedding providers: one module per vendor, behind agents.providers.base."""
