"""OpenRouter through the OpenAI SDK: the OpenAI provider plus OpenRouter's extras.

Extras: attribution headers (``HTTP-Referer``, ``X-Title``), web search by the
``:online`` model suffix, and the top-level ``citations`` list Perplexity models return.
"""

from __future__ import annotations

from typing import Any, ClassVar

from agents.providers.base import ChatRequest, Citation
from agents.providers.openai_provider import OpenAIProvider
from agents.providers.vendor import VendorConfig

ONLINE_SUFFIX = ":online"


class OpenRouterProvider(OpenAIProvider):
    name = "openrouter"
    description = "OpenRouter: many vendors' models through one OpenAI-compatible API."
    key_setting: ClassVar[str] = "OPENROUTER_API_KEY"
    search_rejects_temperature: ClassVar[bool] = False

    def __init__(self, config: VendorConfig, *, app_url: str, app_title: str) -> None:
        headers = {}
        # OpenRouter attributes traffic to the app named by these headers (rankings,
        # dashboards); empty values are left out rather than sent blank.
        if app_url:
            headers["HTTP-Referer"] = app_url
        if app_title:
            headers["X-Title"] = app_title
        super().__init__(config, default_headers=headers)
        self._max_tokens_param = "max_tokens"

    def is_search_model(self, model: str) -> bool:
        return model.endswith(ONLINE_SUFFIX) or model.startswith("perplexity/")

    def model_for(self, request: ChatRequest) -> str:
        model = request.model or self.default_model
        if request.web_search and not self.is_search_model(model):
            return model + ONLINE_SUFFIX
        return model

    def citations_from(self, holder: Any, annotated: Any) -> list[Citation]:
        citations = [
            Citation(url=url)
            for url in (getattr(holder, "citations", None) or [])
            if isinstance(url, str)
        ]
        return citations + super().citations_from(holder, annotated)
