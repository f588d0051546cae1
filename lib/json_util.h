/* The one place that reads JSON files (json-c), with errors that name the file. */
#ifndef KNE_JSON_UTIL_H
#define KNE_JSON_UTIL_H
#include <json-c/json.h>
#include "kne.h"

/* Parses a whole file. *out caller-owned (json_object_put). KNE_ERR_NOT_FOUND,
   KNE_ERR_IO or KNE_ERR_FORMAT (with json-c's message and the path). */
kne_status kne_json_read_file(json_object **out, const char *path);
/* Parses a buffer of len bytes; what names it in messages. */
kne_status kne_json_parse(json_object **out, const char *buf, size_t len, const char *what);
/* Typed look-ups that return 1 when key exists with a fitting type, 0 otherwise. */
int kne_json_int(const json_object *obj, const char *key, int64_t *out);
int kne_json_double(const json_object *obj, const char *key, double *out);
int kne_json_bool(const json_object *obj, const char *key, int *out);
const char *kne_json_str(const json_object *obj, const char *key); /* borrowed or NULL */
json_object *kne_json_get(const json_object *obj, const char *key); /* borrowed or NULL (also for JSON null) */
#endif
