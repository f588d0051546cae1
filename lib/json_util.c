/* JSON file reading with json-c; every JSON file of the library goes through here. */
#include "json_util.h"
#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

kne_status kne_json_parse(json_object **out, const char *buf, size_t len, const char *what)
{
    json_tokener *tok = json_tokener_new();
    if (!tok) return kne_fail(KNE_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    json_object *obj = json_tokener_parse_ex(tok, buf, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t used = (size_t)json_tokener_get_parse_end(tok);
    if (obj && jerr == json_tokener_success) {
        /* trailing garbage other than white space is an error too */
        for (size_t i = used; i < len; i++) {
            if (buf[i] != ' ' && buf[i] != '\n' && buf[i] != '\r' && buf[i] != '\t' && buf[i] != '\0') {
                json_object_put(obj);
                json_tokener_free(tok);
                return kne_fail(KNE_ERR_FORMAT, "%s: invalid JSON: trailing data at byte %zu", what, i);
            }
        }
        json_tokener_free(tok);
        *out = obj;
        return KNE_OK;
    }
    if (obj) json_object_put(obj);
    const char *msg = jerr == json_tokener_continue ? "unexpected end of data" : json_tokener_error_desc(jerr);
    json_tokener_free(tok);
    return kne_fail(KNE_ERR_FORMAT, "%s: invalid JSON: %s (near byte %zu)", what, msg, used);
}

kne_status kne_json_read_file(json_object **out, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return kne_fail(errno == ENOENT ? KNE_ERR_NOT_FOUND : KNE_ERR_IO, "%s: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return kne_fail(KNE_ERR_IO, "%s: cannot seek", path); }
    long n = ftell(f);
    if (n < 0) { fclose(f); return kne_fail(KNE_ERR_IO, "%s: cannot tell size (a directory?)", path); }
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    if (!buf) { fclose(f); return kne_fail(KNE_ERR_OUT_OF_MEMORY, "%s: out of memory", path); }
    size_t got = fread(buf, 1, (size_t)n, f);
    int rerr = ferror(f);
    fclose(f);
    if (got != (size_t)n || rerr) { free(buf); return kne_fail(KNE_ERR_IO, "%s: read error", path); }
    buf[n] = '\0';
    kne_status s = kne_json_parse(out, buf, (size_t)n, path);
    free(buf);
    return s;
}

json_object *kne_json_get(const json_object *obj, const char *key)
{
    json_object *v = NULL;
    if (!obj || !json_object_is_type(obj, json_type_object)) return NULL;
    if (!json_object_object_get_ex(obj, key, &v)) return NULL;
    return v; /* NULL for JSON null */
}

int kne_json_int(const json_object *obj, const char *key, int64_t *out)
{
    json_object *v = kne_json_get(obj, key);
    if (!v || !json_object_is_type(v, json_type_int)) return 0;
    *out = json_object_get_int64(v);
    return 1;
}

int kne_json_double(const json_object *obj, const char *key, double *out)
{
    json_object *v = kne_json_get(obj, key);
    if (!v || !(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int))) return 0;
    *out = json_object_get_double(v);
    return 1;
}

int kne_json_bool(const json_object *obj, const char *key, int *out)
{
    json_object *v = kne_json_get(obj, key);
    if (!v || !json_object_is_type(v, json_type_boolean)) return 0;
    *out = json_object_get_boolean(v);
    return 1;
}

const char *kne_json_str(const json_object *obj, const char *key)
{
    json_object *v = kne_json_get(obj, key);
    if (!v || !json_object_is_type(v, json_type_string)) return NULL;
    return json_object_get_string(v);
}
