/* chat_template.h: turns OpenAI chat messages into a prompt string by running the model's own
 * `tokenizer.chat_template` (a Jinja template) with a small built-in Jinja interpreter, the way
 * HF transformers does (trim_blocks, lstrip_blocks, no autoescape, raise_exception, strftime_now).
 *
 * A parsed template is immutable: one chat_template may be rendered from many threads at once.
 * Rendering is bounded (output size, evaluation steps, memory, macro depth) so a hostile template
 * cannot hang or exhaust the server: it fails with -CND_EINVAL instead. */
#ifndef CINDER_CHAT_TEMPLATE_H
#define CINDER_CHAT_TEMPLATE_H

#include "cinder/common.h"
#include "cinder/buf.h"

#include <cjson/cJSON.h>

struct chat_template;

/* Parse Jinja source; NULL + err ("line N: ...") on a syntax error. */
struct chat_template *chat_template_create(const char *source, char *err);
void chat_template_destroy(struct chat_template *t);

struct chat_template_params {
    bool add_generation_prompt;
    const char *bos_token; /* "" or NULL if none */
    const char *eos_token; /* "" or NULL if none */
    /* Optional object whose members become template variables (tools, enable_thinking,
     * documents, ...); may be NULL. */
    const cJSON *extra_context;
    /* Unix time used by strftime_now(); 0 = now (local time). A fixed value is formatted in
     * UTC, so tests are deterministic. */
    int64_t now;
};

/* Render messages (a cJSON array of OpenAI message objects: role, content as a string, null, or
 * an array of {"type":"text","text":...} parts, optional name, tool_calls, tool_call_id).
 * Normalisation before the template sees them: content arrays made only of text parts are
 * concatenated into one string; tool_calls[].function.arguments given as a JSON string is parsed
 * into an object (what most HF templates expect) that still prints and concatenates as the
 * original string (for templates that expect a string). If rendering fails with a runtime error
 * (not raise_exception) and some message has null content, it is retried once with "" there.
 * Appends to out. Returns 0, or -CND_EINVAL with err = the template's raise_exception message, or
 * "line N: ..." for a runtime error or a limit. On error out may hold partial output. */
int chat_template_render(const struct chat_template *t, const cJSON *messages,
                         const struct chat_template_params *p, struct buf *out, char *err);

/* The plain fallback for models without a template:
 *   bos_token, then one "<role>: <content>\n" line per message (text parts concatenated),
 *   then "assistant:" when add_generation_prompt.
 * Returns 0, or -CND_EINVAL if messages is not an array of objects with a string role. */
int chat_template_render_fallback(const cJSON *messages, const struct chat_template_params *p,
                                  struct buf *out, char *err);

/* Limits (per render). Exposed for tests. */
#define CHAT_TEMPLATE_MAX_OUTPUT (32u << 20)  /* bytes of rendered text */
#define CHAT_TEMPLATE_MAX_STEPS  10000000u    /* expression/statement evaluations */
#define CHAT_TEMPLATE_MAX_MEMORY (256u << 20) /* bytes of intermediate values */
#define CHAT_TEMPLATE_MAX_DEPTH  64           /* nested macro calls */

#endif
