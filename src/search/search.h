/*
 * search: text analysis shared by indexing and queries (docs/internals/search.md).
 *
 * The analyzer turns text into the terms the index holds and queries look up: words are
 * cut at anything that is not a letter or a digit, lowercased (full Unicode simple case
 * mapping), folded (accents and other diacritics removed, ß -> ss, æ -> ae ...), then
 * stemmed with the Snowball stemmer of the text's language. Folding comes before
 * stemming, so a word with or without its accents gives the same term by construction:
 * `inflación`, `inflacion` and `inflaciones` are all `inflacion`; `elections` and
 * `election` are `elect`. Every backend indexes the terms this module makes, so SQLite,
 * PostgreSQL or any other store find the same things.
 */
#ifndef ACERVO_SEARCH_H
#define ACERVO_SEARCH_H

#include "core/core.h"

#include <jansson.h>
#include <stddef.h>

/** The languages with a stemmer; NONE folds without stemming (names, tags, codes). */
enum search_lang { SEARCH_LANG_NONE = 0, SEARCH_LANG_ES, SEARCH_LANG_EN, SEARCH_LANG_COUNT };

/** Longest term in bytes (UTF-8); a longer word is cut at a character boundary. */
#define SEARCH_TERM_MAX 64

/** One term of a text, valid during the callback only. */
struct search_token {
    const char *term; /* folded (and stemmed): NUL-terminated, at most SEARCH_TERM_MAX bytes */
    size_t len;
    int pos;      /* word position in the text: 0, 1, 2 ... (phrases) */
    size_t start; /* the word's bytes in the input: [start, end) (highlighting) */
    size_t end;
};

/** Called for every term; a non-zero return stops the analysis and is returned by it. */
typedef int (*search_token_fn)(void *ctx, const struct search_token *t);

/** An analyzer holds one stemmer per language: use one per thread. */
struct search_analyzer;

/** A new analyzer; ERR_BACKEND when a stemmer cannot be created. */
int search_analyzer_new(struct search_analyzer **out, struct err *err);
/** Frees a (NULL is fine). */
void search_analyzer_free(struct search_analyzer *a);

/**
 * The language of a code: "es", "en" (a region or script after '-' or '_' is ignored:
 * "es-ES", "en_GB"), else SEARCH_LANG_NONE.
 */
enum search_lang search_lang_parse(const char *code);
/** "es", "en" or "" for NONE. */
const char *search_lang_code(enum search_lang lang);

/**
 * Analyses len bytes of UTF-8 text in language lang, calling fn for every term in order.
 * Bytes that are not valid UTF-8 separate words. Returns 0, or fn's first non-zero value.
 */
int search_analyze(struct search_analyzer *a, enum search_lang lang, const char *text, size_t len,
                   search_token_fn fn, void *ctx);

/**
 * The term of one word without stemming (a prefix being typed, a tag, a name part):
 * lowercased and folded into out (NUL-terminated, at most SEARCH_TERM_MAX bytes plus the
 * NUL, so n must be at least SEARCH_TERM_MAX + 1). Characters that are not letters or
 * digits are dropped. Returns the term's length.
 */
size_t search_fold(const char *word, size_t len, char *out, size_t n);

/* ---- the query language (query.c) -------------------------------------------------------- */

/** Longest query text accepted, in bytes. */
#define SEARCH_QUERY_MAX 2048
/** Most words, phrases, prefixes and filters in one query. */
#define SEARCH_QUERY_MAX_TERMS 64
/** Deepest nesting of parentheses. */
#define SEARCH_QUERY_MAX_DEPTH 8

enum search_node_kind {
    SEARCH_N_TERM,   /* a word */
    SEARCH_N_PHRASE, /* "words in this order" */
    SEARCH_N_PREFIX, /* word* */
    SEARCH_N_AND,
    SEARCH_N_OR,
    SEARCH_N_NOT,    /* one child: what must not match */
    SEARCH_N_FILTER, /* field:value */
};

/** The fields a filter may name. */
enum search_field {
    SEARCH_F_NONE = 0,
    SEARCH_F_TYPE,   /* video, audio, image */
    SEARCH_F_STATUS, /* uploading, processing, ready, failed, archived */
    SEARCH_F_TAG,    /* the exact tag (folded) */
    SEARCH_F_PROGRAM,
    SEARCH_F_CATEGORY,
    SEARCH_F_ENTITY,     /* a person, place or organisation's name */
    SEARCH_F_OBJECT,     /* a detected object's label */
    SEARCH_F_LANG,       /* es, en */
    SEARCH_F_CREATED,    /* a range of created_at */
    SEARCH_F_DURATION,   /* a range of duration */
    SEARCH_F_CODEC,      /* the video or audio codec (h264, aac ...) */
    SEARCH_F_RESOLUTION, /* sd, hd, fullhd, uhd (by the short side: <720, <1080, <2160) */
    SEARCH_F_COUNT
};

/** One node of a parsed query. Ranges are [lo, hi): milliseconds (epoch for created). */
struct search_node {
    enum search_node_kind kind;
    enum search_field field; /* FILTER */
    char *text;              /* TERM, PHRASE, PREFIX: as typed; FILTER: the value as typed */
    int64_t lo, hi;          /* FILTER on created or duration; INT64_MIN / INT64_MAX: open */
    size_t pos;              /* byte offset in the query where the node starts */
    struct search_node **kids;
    size_t nkids;
};

/** A parsed query: the tree and how many terms it holds. */
struct search_query {
    struct search_node *root; /* NULL for an empty query (every document) */
    int nterms;
};

/**
 * Parses q (len bytes) into *out, to be released with search_query_release:
 *
 *   words (all must match), "an exact phrase", a OR b, -excluded, prefix*, ( ... ),
 *   type:video tag:economía tag:"cambio climático" program: category: entity: object:
 *   status:ready lang:es created:2024 created:2024-11 created:2024-11-01..2024-12-31
 *   created:>=2020 duration:>60s duration:1m..5m (units ms, s, m, h; s by default)
 *
 * AND binds tighter than OR; `AND` may be written. A query that is all exclusions is
 * refused (it would match almost everything). Errors are ERR_INVALID (ERR_LIMIT beyond
 * the bounds above) with *err_pos the byte offset they refer to and a message saying what
 * was expected: "position 14: expected a closing quote", "position 0: unknown field
 * 'typ' (fields: type, status, ...)".
 */
int search_query_parse(const char *q, size_t len, struct search_query *out, size_t *err_pos,
                       struct err *err);
void search_query_release(struct search_query *q);
/** The field's name in the query language ("type"), "" for NONE. */
const char *search_field_name(enum search_field f);

/** A field:value filter node (keyed fields: tag, program ...), for filters given apart. */
struct search_node *search_node_filter(enum search_field field, const char *value);
/** ANDs n (taken over; NULL: nothing) into q. */
void search_query_and(struct search_query *q, struct search_node *n);
/** Takes q's tree (the caller frees it by ANDing it into another query). */
struct search_node *search_query_take(struct search_query *q);

/**
 * 1 if text (analysed in lang) matches the query tree, else 0 (match.c): a word or phrase
 * matches when any of its analyses occurs in the text, a prefix when a term starts with
 * it; filters match. *hits counts the matched occurrences.
 */
int search_match(struct search_analyzer *a, const struct search_node *root, enum search_lang lang,
                 const char *text, size_t len, int *hits);

/* ---- highlighted snippets (snippet.c) ------------------------------------------------------ */

/** What a snippet highlights: the query's terms as the analyzer makes them. */
struct search_highlight {
    const char *const *terms; /* whole terms: a word matches when its term is one of them */
    size_t nterms;
    const char *const *prefixes; /* folded prefixes: a word matches when its folded form
                                  * starts with one of them */
    size_t nprefixes;
};

/**
 * The part of text (UTF-8, analysed in lang) that best shows why it matched, as HTML:
 * the window of at most max_words words holding the most distinct highlighted terms (then
 * the most matches, then the earliest), matched words wrapped in <em>...</em>, everything
 * else escaped (&amp; &lt; &gt; &quot; &apos;), "…" where the text is cut. A text without a
 * match gives its first max_words words. *out is a new string (free); its length in
 * *out_len if not NULL. Returns how many words of the window matched.
 */
int search_snippet(struct search_analyzer *a, enum search_lang lang, const char *text, size_t len,
                   const struct search_highlight *h, int max_words, char **out, size_t *out_len);

/* ---- the search document of an asset (doc.c) ----------------------------------------------- */

/** Longest key ("tag=pedro_sanchez"), in bytes. */
#define SEARCH_KEY_MAX 128

/**
 * The language an asset's text is analysed in: its language if set (es, en; any other code
 * is NONE), otherwise the one whose common words its title and description use more
 * (NONE on a tie). Deterministic: the index removes a document by analysing it again.
 */
enum search_lang search_doc_lang(struct search_analyzer *a, const char *language, const char *title,
                                 const char *description);

/**
 * The parsed JSON object of an asset's editorial or AI metadata (NULL for anything but an
 * object); the doc functions below take these (NULL: none). json_decref frees.
 */
json_t *search_doc_json(const char *json);

/** Appends the terms of text to out, separated by spaces. 0, or -1 if out is full. */
int search_doc_terms(struct search_analyzer *a, enum search_lang lang, const char *text, size_t len,
                     struct buf *out);

/**
 * The "names" column: tags, program, category (editorial JSON) and entity names, objects,
 * faces and topics (AI JSON), folded but not stemmed.
 */
int search_doc_names(struct search_analyzer *a, json_t *ed, json_t *ai, struct buf *out);

/** The "body" column: description, original filename and every editorial string. */
int search_doc_body(struct search_analyzer *a, enum search_lang lang, const char *description,
                    const char *filename, json_t *ed, struct buf *out);

/** The "ai" column: OCR text and the transcript (its segments' text, in order). */
int search_doc_ai(struct search_analyzer *a, enum search_lang lang, json_t *ai,
                  const char *transcript, struct buf *out);

/**
 * Appends the key of field=value ("tag=pedro_sanchez": the value's folded words joined by
 * '_', at most SEARCH_KEY_MAX bytes; "tag=_" for a value without letters or digits). Keys
 * hold '=' and '_', which no term does, so a key never matches a word.
 */
int search_key(struct search_analyzer *a, const char *field, const char *value, size_t len,
               struct buf *out);

/**
 * The "keys" column: type=, status=, lang=, year=, month= (of created_ms, UTC), tag=,
 * program=, category=, entity=, object=, face=, codec=, resolution= of the document; what
 * filters match.
 */
int search_doc_keys(struct search_analyzer *a, const char *type, const char *status,
                    enum search_lang lang, int64_t created_ms, json_t *ed, json_t *ai,
                    const char *video_codec, const char *audio_codec, int64_t width, int64_t height,
                    struct buf *out);

/** The resolution class of a picture: "sd", "hd", "fullhd", "uhd"; NULL if not known. */
const char *search_resolution(int64_t width, int64_t height);

/**
 * Calls fn once for each distinct space-separated term of the texts (NULL texts skipped),
 * in first-seen order; fn's non-zero return stops and is returned.
 */
int search_terms_distinct(const char *const *texts, size_t ntexts,
                          int (*fn)(void *ctx, const char *term, size_t len), void *ctx);

/**
 * The document's facet values as "field\tvalue\n" lines (tag, program, category, entity,
 * object), as written, for counting.
 */
int search_doc_facets(json_t *ed, json_t *ai, struct buf *out);

#endif
