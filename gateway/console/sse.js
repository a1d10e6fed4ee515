// A server-sent events parser fed with text as it arrives. EventSource would do this, but it
// cannot send an Authorization header, and the API key must never go into a URL; so the
// console reads event streams with fetch() and parses them here (the HTML standard's
// event-stream format: `event`, `data`, `id` fields, `:` comments, a blank line ends an event).

export function sseParser(onEvent) {
  let buffer = ''; // the start of a line whose end has not arrived yet
  let pendingCR = false; // the last chunk ended in \r: a \n starting the next one is its pair
  let event = fresh();

  function fresh() {
    return {type: 'message', data: [], id: null};
  }

  function line(text) {
    if (text === '') {
      if (event.data.length) onEvent({type: event.type, data: event.data.join('\n'), id: event.id});
      event = fresh();
      return;
    }
    if (text.startsWith(':')) return; // a comment: the gateway's keep-alives
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') event.type = value;
    else if (field === 'data') event.data.push(value);
    else if (field === 'id') event.id = value;
  }

  return {
    push(chunk) {
      if (!chunk) return;
      if (pendingCR && chunk.startsWith('\n')) chunk = chunk.slice(1);
      pendingCR = chunk.endsWith('\r');
      buffer += chunk;
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop();
      lines.forEach(line);
    },
  };
}
