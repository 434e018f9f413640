"""What the routes share: the scheduler, the tokenizer and the name the model is served under."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .protocol import APIError
from .scheduler import Scheduler


@dataclass
class ServerState:
    scheduler: Scheduler
    tokenizer: Any
    model_name: str
    speculative_tokens: int = 0  # the server-wide default for requests that do not say (ocg serve --speculative)
    created: int = field(default_factory=lambda: int(time.time()))

    def speculation(self, requested: int | None) -> int:
        return self.speculative_tokens if requested is None else requested

    @property
    def vocab_size(self) -> int:
        return self.scheduler.model.config.vocab_size

    def check_model(self, name: str | None) -> None:
        """A request may leave the model out (llama.cpp clients do); a name that is not ours is a 404, as in OpenAI."""
        if name is not None and name != self.model_name:
            raise APIError(404, f"model {name!r} does not exist; this server serves {self.model_name!r}",
                           param="model", code="model_not_found")
