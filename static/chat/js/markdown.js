/* Answers as safe Markdown: marked parses, DOMPurify sanitises, highlight.js colours code.
 *
 * The model's text is untrusted. Raw HTML in it is shown as text (marked's `html` tokens
 * are escaped before DOMPurify sees anything), DOMPurify then keeps only the tags Markdown
 * itself produces, and links open in a new tab without a referrer. Images are not among
 * those tags: an answer cannot make the browser fetch anything.
 *
 * marked, DOMPurify and highlight.js are the vendored UMD builds (static/chat/vendor/),
 * loaded as deferred classic scripts before the modules run: they are read from `window`.
 */

const ALLOWED_TAGS = [
  "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "blockquote",
  "ul", "ol", "li", "a", "h1", "h2", "h3", "h4", "h5", "h6",
  "table", "thead", "tbody", "tr", "th", "td", "span", "sup", "sub",
];
const ALLOWED_ATTR = ["href", "title", "class", "start", "align"];

function escapeHtml(text) {
  return String(text)
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

const parser = new window.marked.Marked({
  gfm: true,
  breaks: false,
  renderer: {
    // Block and inline HTML from the model: shown, never interpreted.
    html(token) {
      return escapeHtml(token.text);
    },
  },
});

const purifier = window.DOMPurify;
purifier.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

if (window.hljs) window.hljs.configure({ ignoreUnescapedHTML: true });

function languageOf(code) {
  const match = /(?:^|\s)language-([\w+#.-]+)/.exec(code.className || "");
  return match ? match[1] : "";
}

function highlight(code) {
  const hljs = window.hljs;
  if (!hljs) return;
  const language = languageOf(code);
  if (language && !hljs.getLanguage(language)) return; // unknown: leave it plain
  hljs.highlightElement(code);
}

/* Wrap each code block with a header: its language and a copy button. */
function decorateCodeBlocks(root, options) {
  for (const pre of Array.from(root.querySelectorAll("pre"))) {
    const code = pre.querySelector("code");
    if (!code) continue;
    const declared = languageOf(code);
    if (options.highlight) highlight(code);
    // Auto-detection that found nothing leaves "language-undefined" behind.
    const detected = languageOf(code);
    const wrapper = document.createElement("div");
    wrapper.className = "code-block";
    const header = document.createElement("div");
    header.className = "code-header";
    const label = document.createElement("span");
    label.textContent = declared || (detected !== "undefined" && detected) || "code";
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "copy-code";
    copy.textContent = "Copy code";
    copy.addEventListener("click", () => options.copy(code.textContent || "", copy));
    header.append(label, copy);
    pre.replaceWith(wrapper);
    wrapper.append(header, pre);
    // Long lines scroll inside the block, never the page; keyboard users can scroll it.
    pre.tabIndex = 0;
  }
}

/**
 * The Markdown `text` as a sanitised DocumentFragment.
 * options.highlight: colour code (skipped while an answer streams: it is re-rendered
 * on every chunk); options.copy(text, button): what a code block's copy button does.
 */
export function render(text, options) {
  const html = parser.parse(String(text || ""));
  const fragment = purifier.sanitize(html, {
    ALLOWED_TAGS,
    ALLOWED_ATTR,
    ALLOW_DATA_ATTR: false,
    RETURN_DOM_FRAGMENT: true,
  });
  // marked ends blocks with newlines; as text nodes they would pad the answer's text.
  for (const node of Array.from(fragment.childNodes)) {
    if (node.nodeType === Node.TEXT_NODE && !node.textContent.trim()) node.remove();
  }
  decorateCodeBlocks(fragment, options || { highlight: false, copy: () => {} });
  return fragment;
}

