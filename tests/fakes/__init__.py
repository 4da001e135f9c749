"""Fake vendor servers (OpenAI, Anthropic, Gemini, OpenRouter, SerpAPI) on 127.0.0.1."""
