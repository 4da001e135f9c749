/* What more than one module of the chat reads and changes, in one place.
 *
 * Modules import `state` and read or assign its fields; nothing else is shared. What only
 * one module uses stays private to it: the socket and its reconnect timer (socket.js),
 * the next question's images (attachments.js), the listed conversations (conversations.js), the
 * speech buffer (announcer.js) and the pending answer render (transcript.js).
 */

export const state = {
  // The open conversation (a chat session): its id, whether the server has started it
  // (it is started before the first question or document), its finished turns, and its
  // documents, which every question in it is asked with (attachments.js:
  // [{key, name, kind: "document", state, fileId, ingestion}]).
  conversation: { id: null, started: false, turns: [], documents: [] },
  // The answer being generated, null when idle:
  // {turn, view, queryId, lastEventId, seen, phase, cancelPending, sent}.
  current: null,
  // Until the user picks a provider or model, questions leave both open: the server then
  // answers with its default, or with the model of the experiment variant this
  // conversation was assigned (a request's own choice always wins over an experiment).
  modelChosen: false,
  // A question typed while files were still uploading or being read, sent once they are
  // ready: {query, conversationId, cancel}, null when none waits.
  waiting: null,
};

export function isGenerating() {
  return state.current !== null;
}
