// Tokens and cost: a quiet line under each answer and the conversation's total in the header.
// Costs come from the server (stored at the model's price when the answer was written); a model
// without a known price shows tokens only. "≈" marks tokens Lapis counted because Azure sent none.

const number = new Intl.NumberFormat();

export function usageText(usage) {
  if (!usage) return "";
  const approx = usage.estimated ? "≈" : "";
  const parts = [
    `${approx}${number.format(usage.prompt_tokens || 0)} in`,
    `${approx}${number.format(usage.completion_tokens || 0)} out`,
  ];
  if (usage.cost_display) parts.push(usage.cost_display);
  return parts.join(" · ");
}

export function usageTitle(usage) {
  if (!usage) return "";
  let title = `${usage.prompt_tokens || 0} prompt + ${usage.completion_tokens || 0} completion tokens`;
  if (usage.reasoning_tokens) title += ` (${usage.reasoning_tokens} of them reasoning)`;
  if (usage.estimated) title += "; counted by Lapis: Azure sent no usage";
  title += usage.cost ? `; cost ${usage.cost} ${usage.currency}` : "; no price known for this model";
  return title;
}

// Paint one message's usage line (hidden while there is none).
export function paintUsage(element, usage) {
  if (!element) return;
  element.hidden = !usage;
  element.textContent = usageText(usage);
  element.title = usageTitle(usage);
  element.dataset.estimated = usage?.estimated ? "1" : "0";
}

export class ConversationUsage {
  constructor({ root, api }) {
    this.api = api;
    this.element = root.querySelector("[data-conversation-usage]");
    this.requested = 0;
  }

  async refresh(conversationId) {
    if (!this.element) return;
    if (!conversationId) {
      this.element.hidden = true;
      return;
    }
    const ticket = ++this.requested;
    try {
      const data = await this.api.get(`conversations/${conversationId}/usage`);
      if (ticket === this.requested) this.show(data);
    } catch {
      this.element.hidden = true; // a hint, like the context meter: no error banner
    }
  }

  show(data) {
    const tokens = (data.prompt_tokens || 0) + (data.completion_tokens || 0);
    this.element.hidden = data.calls === 0;
    const approx = data.estimated ? "≈" : "";
    const costs = data.costs.map((c) => c.cost_display);
    this.element.textContent = [`${approx}${number.format(tokens)} tokens`, ...costs].join(" · ");
    let title = `This conversation so far: ${data.prompt_tokens} prompt + ${data.completion_tokens} completion tokens in ${data.calls} calls (answers, titles, summaries)`;
    if (data.unpriced_calls) title += `; ${data.unpriced_calls} without a known price (tokens only)`;
    this.element.title = title;
  }
}
