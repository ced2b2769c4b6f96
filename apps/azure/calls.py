"""A model's one-shot call, whichever API serves it.

Titles and summaries ask a model for one whole answer. Most models take it from
chat/completions (``client.complete_chat``); a model with ``useResponsesApi`` (some, like codex
deployments, are served nowhere else) takes it from the Responses API
(``responses.complete_responses``). Both return a ``client.Completion`` and raise only
UpstreamError, so callers need not know which.
"""

from apps.azure.client import complete_chat
from apps.azure.responses import complete_responses


async def complete(model, messages, *, params=None, tools=None, tool_choice=None, timeout=30.0,
                   purpose="chat"):
    """One non-streamed answer from ``model`` (a ModelSpec); see the module docstring."""
    if model.responses_api:
        return await complete_responses(
            model, messages, params=params, tools=tools, tool_choice=tool_choice, timeout=timeout,
            purpose=purpose,
        )
    return await complete_chat(
        model, messages, params=params, tools=tools, tool_choice=tool_choice, timeout=timeout,
        purpose=purpose,
    )
