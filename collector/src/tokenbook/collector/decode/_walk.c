/* The OTLP trace request's envelope, walked in C: `tokenbook.collector.decode.spans` calls `walk`
 * after upb has parsed the same body (`otlp_view.TraceRequestView`), so the body is known to be valid
 * protobuf with valid UTF-8 in every string field the view declares.
 *
 * `walk` reads the fields the view declares, with the view's field numbers and wire types, and does
 * per span what `spans.decode_protobuf` does in Python: the ID checks, the attribute limit, the
 * attribute memo (its table, and its `_learn` for a miss: every attribute rule stays in Python, but
 * a miss in the usual form is read here, `quick_learn`, as `_learn` reads it), the
 * outcome and first-token events, the name limit and the record. Resources and the rejection messages
 * are Python's own functions, called back. Repeated occurrences of a singular field act as upb's parse
 * does: a scalar's last value wins, a message is parsed into the one before it.
 *
 * It returns None, and the caller decodes in Python, for anything the view would read otherwise: a
 * declared field with another wire type, a group, a length past its message. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    const char *p;
    Py_ssize_t n;
} Slice;

typedef struct {
    Slice *v;
    Py_ssize_t n, cap;
} Slices;

static int push(Slices *s, const char *p, Py_ssize_t n) {
    if (s->n == s->cap) {
        Py_ssize_t cap = s->cap ? 2 * s->cap : 16;
        Slice *v = PyMem_Realloc(s->v, (size_t)cap * sizeof(Slice));
        if (v == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n].p = p;
    s->v[s->n].n = n;
    s->n++;
    return 0;
}

static void clear(Slices *s) {
    PyMem_Free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

/* The walk's outcome besides a Python error: the body is read otherwise than the view reads it. */
#define OTHERWISE 1

enum { WT_VARINT = 0, WT_FIXED64 = 1, WT_LEN = 2, WT_FIXED32 = 5 };

static int varint(const char **pp, const char *end, uint64_t *out) {
    const char *p = *pp;
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (p >= end)
            return OTHERWISE;
        uint8_t b = (uint8_t)*p++;
        v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *pp = p;
            *out = v;
            return 0;
        }
    }
    return OTHERWISE;
}

/* One field of a message: its number, wire type and, for WT_LEN, its bytes; for WT_VARINT and
 * WT_FIXED64 its value. Unknown wire types (groups) are OTHERWISE. */
typedef struct {
    uint32_t number;
    int wt;
    uint64_t value;
    Slice bytes;
} Field;

static int next_field(const char **pp, const char *end, Field *f) {
    uint64_t tag, len;
    if (varint(pp, end, &tag))
        return OTHERWISE;
    f->number = (uint32_t)(tag >> 3);
    f->wt = (int)(tag & 7);
    if (f->number == 0)
        return OTHERWISE;
    switch (f->wt) {
    case WT_VARINT:
        return varint(pp, end, &f->value);
    case WT_FIXED64:
        if (end - *pp < 8)
            return OTHERWISE;
        f->value = 0;
        for (int i = 7; i >= 0; i--) /* little-endian on the wire */
            f->value = f->value << 8 | (uint8_t)(*pp)[i];
        *pp += 8;
        return 0;
    case WT_LEN:
        if (varint(pp, end, &len) || len > (uint64_t)(end - *pp))
            return OTHERWISE;
        f->bytes.p = *pp;
        f->bytes.n = (Py_ssize_t)len;
        *pp += len;
        return 0;
    case WT_FIXED32:
        if (end - *pp < 4)
            return OTHERWISE;
        *pp += 4;
        return 0;
    default:
        return OTHERWISE;
    }
}

/* A declared field must come with its declared wire type. */
#define EXPECT(f, type)          \
    do {                         \
        if ((f).wt != (type))    \
            return OTHERWISE;    \
    } while (0)

typedef struct {
    PyObject *table;        /* the memo's dict: serialized KeyValue -> (key, value) | reason | None */
    PyObject *learn;        /* the memo's `_learn(raw)` for a miss */
    PyObject *resource;     /* `_resource(raws)` -> a `_Resource` (attrs, service, instance, problem) */
    Py_ssize_t max_attributes; /* 0: no limit */
    PyObject *outcome_key;
    PyObject *first_token_events;
    Py_ssize_t max_name_length; /* -1: no limit */
    PyObject *span_name;    /* the limits' `span_name` (None without limits) */
    PyObject *record_type;  /* SpanRecord */
    PyObject *id_problem;   /* `_id_problem(trace_id, span_id, parent)` */
    PyObject *too_many;     /* `_too_many_attributes(attrs, resource, limit)` */
    PyObject *rules;        /* the memo's rules: key bytes -> `_KeyRule` (key, only measured, readable) | None */
    Py_ssize_t max_value_length; /* the limits' (characters of a kept string); -1: no limit */
    Py_ssize_t max_bytes;   /* the memo's `_MAX_BYTES`: a longer KeyValue is not kept in the table */
    Py_ssize_t max_entries; /* the memo's `_MAX_ENTRIES`: the table is cleared when it holds as many */
} Context;

/* A miss of the memo read as `_AttributeMemo._learn` reads it, for its usual form: a KeyValue in the
 * encoding `_split_key_value` slices, of a key whose rule the memo knows, with a string value that
 * `_value` slices (shorter than 128 bytes, UTF-8) within the length limit, or a one- or two-byte
 * integer. `*kv` becomes a new reference to what `_learn` returns, kept in the table as `_learn`
 * keeps it: 1. 0 where `_learn` must read it (no error set); -1 on an error. */
static int quick_learn(const Context *c, PyObject *raw, const Slice *s, PyObject **kv) {
    const unsigned char *p = (const unsigned char *)s->p;
    Py_ssize_t n = s->n;
    if (n < 4 || p[0] != 0x0A || p[1] >= 0x80)
        return 0;
    Py_ssize_t k = p[1] + 2; /* where the value's field starts */
    if (k + 2 > n || p[k] != 0x12 || p[k + 1] != n - k - 2 || p[k + 1] >= 0x80)
        return 0;
    PyObject *key_bytes = PyBytes_FromStringAndSize(s->p + 2, p[1]);
    if (key_bytes == NULL)
        return -1;
    PyObject *rule = PyDict_GetItemWithError(c->rules, key_bytes); /* borrowed */
    Py_DECREF(key_bytes);
    if (rule == NULL)
        return PyErr_Occurred() ? -1 : 0; /* a key not seen yet: `_rule` decides */
    PyObject *found;
    if (rule == Py_None) {
        found = Py_NewRef(Py_None); /* a key the filter does not keep */
    } else {
        if (!PyTuple_Check(rule) || PyTuple_GET_SIZE(rule) != 3 || PyTuple_GET_ITEM(rule, 2) != Py_True)
            return 0; /* a key that is not UTF-8: its value is not read */
        const unsigned char *v = p + k + 2;
        Py_ssize_t vn = n - k - 2;
        PyObject *value;
        if (vn >= 2 && v[0] == 0x0A && v[1] == vn - 2 && v[1] < 0x80) { /* string_value */
            value = PyUnicode_DecodeUTF8((const char *)v + 2, v[1], "strict");
            if (value == NULL) {
                if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
                    return -1;
                PyErr_Clear(); /* `_view_value` says why */
                return 0;
            }
            if (c->max_value_length >= 0 && PyUnicode_GET_LENGTH(value) > c->max_value_length) {
                Py_DECREF(value); /* over the limit: `_read` asks the limits what it means */
                return 0;
            }
        } else if (vn == 2 && v[0] == 0x18 && v[1] < 0x80) { /* int_value of one byte */
            value = PyLong_FromLong(v[1]);
        } else if (vn == 3 && v[0] == 0x18 && v[1] >= 0x80 && v[2] < 0x80) { /* of two */
            value = PyLong_FromLong((v[1] & 0x7F) | (long)v[2] << 7);
        } else {
            return 0;
        }
        if (value == NULL)
            return -1;
        found = PyTuple_Pack(2, PyTuple_GET_ITEM(rule, 0), value);
        Py_DECREF(value);
        if (found == NULL)
            return -1;
    }
    if (n <= c->max_bytes) {
        if (PyDict_GET_SIZE(c->table) >= c->max_entries)
            PyDict_Clear(c->table);
        if (PyDict_SetItem(c->table, raw, found) < 0) {
            Py_DECREF(found);
            return -1;
        }
    }
    *kv = found;
    return 1;
}

/* What `spans._AttributeMemo.into` does: the kept attributes of `raws` into `attrs`. Returns NULL on
 * an error, else a new reference: the reason the span is rejected (str), or None. */
static PyObject *memo_into(const Context *c, const Slices *raws, PyObject *attrs) {
    for (Py_ssize_t i = 0; i < raws->n; i++) {
        PyObject *raw = PyBytes_FromStringAndSize(raws->v[i].p, raws->v[i].n);
        if (raw == NULL)
            return NULL;
        PyObject *kv = PyDict_GetItemWithError(c->table, raw);
        if (kv != NULL) {
            Py_INCREF(kv);
        } else if (PyErr_Occurred()) {
            Py_DECREF(raw);
            return NULL;
        } else {
            int quick = quick_learn(c, raw, &raws->v[i], &kv);
            if (quick == 0)
                kv = PyObject_CallOneArg(c->learn, raw);
            if (quick < 0 || kv == NULL) {
                Py_DECREF(raw);
                return NULL;
            }
        }
        Py_DECREF(raw);
        if (kv == Py_None) {
            Py_DECREF(kv);
            continue;
        }
        if (PyUnicode_CheckExact(kv))
            return kv;
        if (!PyTuple_CheckExact(kv) || PyTuple_GET_SIZE(kv) != 2) {
            Py_DECREF(kv);
            PyErr_SetString(PyExc_TypeError, "the attribute memo holds something other than (key, value)");
            return NULL;
        }
        int failed = PyDict_SetItem(attrs, PyTuple_GET_ITEM(kv, 0), PyTuple_GET_ITEM(kv, 1));
        Py_DECREF(kv);
        if (failed)
            return NULL;
    }
    Py_RETURN_NONE;
}

/* A string field as text into `*out` (a new reference): 0, -1 on an error, or OTHERWISE where
 * Python's UTF-8 decoder refuses what upb accepted (the Python walk then reads upb's string). */
static int text(const Slice *s, PyObject **out) {
    *out = PyUnicode_DecodeUTF8(s->p, s->n, "strict");
    if (*out != NULL)
        return 0;
    if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
        return -1;
    PyErr_Clear();
    return OTHERWISE;
}

/* The outcome and first-token events of a span. Returns -1 on an error, OTHERWISE, or 0. */
static int events(const Context *c, const Slices *evs, PyObject **outcome, uint64_t *first_token) {
    Slices attrs = {0};
    int status = 0;
    for (Py_ssize_t i = 0; i < evs->n && status == 0; i++) {
        const char *p = evs->v[i].p, *end = p + evs->v[i].n;
        uint64_t time = 0;
        Slice name = {"", 0};
        Field f;
        attrs.n = 0;
        while (p < end) {
            if (next_field(&p, end, &f)) {
                status = OTHERWISE;
                break;
            }
            if (f.number == 1) {
                if (f.wt != WT_FIXED64) { status = OTHERWISE; break; }
                time = f.value;
            } else if (f.number == 2) {
                if (f.wt != WT_LEN) { status = OTHERWISE; break; }
                name = f.bytes;
            } else if (f.number == 3) {
                if (f.wt != WT_LEN) { status = OTHERWISE; break; }
                if (push(&attrs, f.bytes.p, f.bytes.n)) { status = -1; break; }
            }
        }
        if (status)
            break;
        PyObject *ev_name;
        if ((status = text(&name, &ev_name)) != 0)
            break;
        int is_outcome = PyUnicode_Compare(ev_name, c->outcome_key) == 0;
        if (!is_outcome && PyErr_Occurred()) {
            Py_DECREF(ev_name);
            status = -1;
            break;
        }
        if (is_outcome) {
            Py_DECREF(ev_name);
            PyObject *found = PyDict_New();
            if (found == NULL) { status = -1; break; }
            PyObject *problem = memo_into(c, &attrs, found); /* event values are not length-limited */
            if (problem == NULL) { Py_DECREF(found); status = -1; break; }
            Py_DECREF(problem);
            PyObject *v = PyDict_GetItemWithError(found, c->outcome_key);
            int truth = v == NULL ? 0 : PyObject_IsTrue(v);
            PyObject *s = truth > 0 ? PyObject_Str(v) : (truth == 0 && !PyErr_Occurred() ? PyUnicode_New(0, 0) : NULL);
            Py_DECREF(found);
            if (s == NULL) { status = -1; break; }
            Py_SETREF(*outcome, s);
            continue;
        }
        int is_first = PySequence_Contains(c->first_token_events, ev_name);
        Py_DECREF(ev_name);
        if (is_first < 0) {
            status = -1;
            break;
        }
        if (is_first && time && (!*first_token || time < *first_token))
            *first_token = time;
    }
    clear(&attrs);
    return status;
}

/* What one walk gathers. */
typedef struct {
    PyObject *records;
    Py_ssize_t rejected;
    PyObject *reason; /* "" until the first rejection */
} Out;

static int reject(Out *out, PyObject *why) {
    /* Steals `why` (a new reference, or NULL on an error). */
    if (why == NULL)
        return -1;
    out->rejected++;
    if (PyUnicode_GET_LENGTH(out->reason) == 0)
        Py_SETREF(out->reason, why);
    else
        Py_DECREF(why);
    return 0;
}

typedef struct {
    PyObject *res;      /* the resource's kept attributes */
    PyObject *service;
    PyObject *instance;
    PyObject *problem;  /* "" or why every span of the resource is rejected */
    PyObject *scope_name;
    PyObject *scope_version;
} Where;

static int span(const Context *c, const Where *w, const Slice *body, Out *out) {
    const char *p = body->p, *end = p + body->n;
    Slice trace = {"", 0}, span_id = {"", 0}, parent = {"", 0}, name = {"", 0};
    uint64_t start = 0, stop = 0, code = 0;
    Slices attrs = {0}, evs = {0};
    Field f;
    int status = 0;
    PyObject *t = NULL, *s = NULL, *par = NULL, *dict = NULL, *problem = NULL, *outcome = NULL;
    PyObject *py_name = NULL, *values = NULL, *record = NULL;
    while (p < end && status == 0) {
        if (next_field(&p, end, &f)) {
            status = OTHERWISE;
            break;
        }
        switch (f.number) {
        case 1: if (f.wt != WT_LEN) status = OTHERWISE; else trace = f.bytes; break;
        case 2: if (f.wt != WT_LEN) status = OTHERWISE; else span_id = f.bytes; break;
        case 4: if (f.wt != WT_LEN) status = OTHERWISE; else parent = f.bytes; break;
        case 5: if (f.wt != WT_LEN) status = OTHERWISE; else name = f.bytes; break;
        case 7: if (f.wt != WT_FIXED64) status = OTHERWISE; else start = f.value; break;
        case 8: if (f.wt != WT_FIXED64) status = OTHERWISE; else stop = f.value; break;
        case 9:
            if (f.wt != WT_LEN) status = OTHERWISE;
            else if (push(&attrs, f.bytes.p, f.bytes.n)) status = -1;
            break;
        case 11:
            if (f.wt != WT_LEN) status = OTHERWISE;
            else if (push(&evs, f.bytes.p, f.bytes.n)) status = -1;
            break;
        case 15: { /* Status, parsed into the one before: its code's last value wins */
            if (f.wt != WT_LEN) { status = OTHERWISE; break; }
            const char *q = f.bytes.p, *qend = q + f.bytes.n;
            Field g;
            while (q < qend) {
                if (next_field(&q, qend, &g)) { status = OTHERWISE; break; }
                if (g.number == 3) {
                    if (g.wt != WT_VARINT) { status = OTHERWISE; break; }
                    code = g.value;
                }
            }
            break;
        }
        default: break;
        }
    }
    if (status)
        goto done;
    static const char zeros[16] = {0};
    if (trace.n != 16 || span_id.n != 8 || memcmp(trace.p, zeros, 16) == 0 || memcmp(span_id.p, zeros, 8) == 0 ||
        (parent.n && parent.n != 8)) {
        t = PyBytes_FromStringAndSize(trace.p, trace.n);
        s = PyBytes_FromStringAndSize(span_id.p, span_id.n);
        par = PyBytes_FromStringAndSize(parent.p, parent.n);
        if (t == NULL || s == NULL || par == NULL) { status = -1; goto done; }
        status = reject(out, PyObject_CallFunctionObjArgs(c->id_problem, t, s, par, NULL));
        goto done;
    }
    dict = PyDict_Copy(w->res);
    if (dict == NULL) { status = -1; goto done; }
    if (PyUnicode_GET_LENGTH(w->problem)) {
        problem = Py_NewRef(w->problem);
    } else {
        problem = memo_into(c, &attrs, dict);
        if (problem == Py_None && c->max_attributes && attrs.n > c->max_attributes) {
            /* `_too_many_attributes`: counts the attributes kept, content aside ("": within) */
            Py_DECREF(problem);
            problem = PyObject_CallFunction(c->too_many, "OOn", dict, w->res, c->max_attributes);
        }
    }
    if (problem == NULL) { status = -1; goto done; }
    if (problem != Py_None && PyUnicode_GET_LENGTH(problem)) {
        status = reject(out, Py_NewRef(problem));
        goto done;
    }
    outcome = PyUnicode_New(0, 0);
    uint64_t first_token = 0;
    if (outcome == NULL) { status = -1; goto done; }
    if (evs.n && (status = events(c, &evs, &outcome, &first_token)) != 0)
        goto done;
    if (PyUnicode_GET_LENGTH(outcome) == 0) {
        PyObject *v = PyDict_GetItemWithError(dict, c->outcome_key);
        if (v != NULL) {
            PyObject *str = PyObject_Str(v);
            if (str == NULL) { status = -1; goto done; }
            Py_SETREF(outcome, str);
        } else if (PyErr_Occurred()) {
            status = -1;
            goto done;
        }
    }
    if ((status = text(&name, &py_name)) != 0)
        goto done;
    if (c->max_name_length >= 0 && PyUnicode_GET_LENGTH(py_name) > c->max_name_length) {
        Py_SETREF(py_name, PyObject_CallOneArg(c->span_name, py_name));
        if (py_name == NULL) { status = -1; goto done; }
    }
    values = Py_BuildValue(
        "(y#y#y#ONNOOOOOOON)", trace.p, trace.n, span_id.p, span_id.n, parent.p, parent.n, py_name,
        PyLong_FromUnsignedLongLong(start), PyLong_FromUnsignedLongLong(stop),
        ((int32_t)(uint32_t)code == 2) ? Py_True : Py_False, w->service, dict, outcome, w->scope_name,
        w->scope_version, w->instance, PyLong_FromUnsignedLongLong(first_token));
    if (values == NULL) { status = -1; goto done; }
    Py_SETREF(values, PyTuple_Pack(1, values)); /* tuple.__new__(SpanRecord, values) */
    if (values == NULL) { status = -1; goto done; }
    record = PyTuple_Type.tp_new((PyTypeObject *)c->record_type, values, NULL);
    if (record == NULL) { status = -1; goto done; }
    status = PyList_Append(out->records, record);
done:
    Py_XDECREF(t);
    Py_XDECREF(s);
    Py_XDECREF(par);
    Py_XDECREF(dict);
    Py_XDECREF(problem);
    Py_XDECREF(outcome);
    Py_XDECREF(py_name);
    Py_XDECREF(values);
    Py_XDECREF(record);
    clear(&attrs);
    clear(&evs);
    return status;
}

/* The length-delimited fields 1 and 2 of a message, each in order: a ResourceSpans' resource
 * messages and ScopeSpans, or a ScopeSpans' scope messages and spans. */
static int fields_1_and_2(const Slice *body, Slices *one, Slices *two) {
    const char *p = body->p, *end = p + body->n;
    Field f;
    while (p < end) {
        if (next_field(&p, end, &f))
            return OTHERWISE;
        if (f.number == 1 || f.number == 2) {
            EXPECT(f, WT_LEN);
            if (push(f.number == 1 ? one : two, f.bytes.p, f.bytes.n))
                return -1;
        }
    }
    return 0;
}

/* A scope's name and version: each scope message is parsed into the one before, so the last of each
 * wins. */
static int scope(const Slices *scopes, Slice *name, Slice *version) {
    Slices names = {0}, versions = {0};
    int status = 0;
    for (Py_ssize_t i = 0; i < scopes->n && status == 0; i++)
        status = fields_1_and_2(&scopes->v[i], &names, &versions);
    if (status == 0 && names.n)
        *name = names.v[names.n - 1];
    if (status == 0 && versions.n)
        *version = versions.v[versions.n - 1];
    clear(&names);
    clear(&versions);
    return status;
}

/* The serialized attributes of a resource's messages, as a list of bytes. */
static int resource_attributes(const Slices *resource, PyObject *list) {
    for (Py_ssize_t i = 0; i < resource->n; i++) {
        const char *p = resource->v[i].p, *end = p + resource->v[i].n;
        Field f;
        while (p < end) {
            if (next_field(&p, end, &f))
                return OTHERWISE;
            if (f.number == 1) {
                EXPECT(f, WT_LEN);
                PyObject *raw = PyBytes_FromStringAndSize(f.bytes.p, f.bytes.n);
                if (raw == NULL || PyList_Append(list, raw)) {
                    Py_XDECREF(raw);
                    return -1;
                }
                Py_DECREF(raw);
            }
        }
    }
    return 0;
}

/* Spans in a ScopeSpans message. */
static int count_spans(const Slice *ss, Py_ssize_t *n) {
    Slices scopes = {0}, spans = {0};
    int status = fields_1_and_2(ss, &scopes, &spans);
    *n = spans.n;
    clear(&scopes);
    clear(&spans);
    return status;
}

static int parse_context(PyObject *ctx, Context *c) {
    if (!PyTuple_CheckExact(ctx) || PyTuple_GET_SIZE(ctx) != 15) {
        PyErr_SetString(PyExc_TypeError, "walk: the context is a 15-tuple");
        return -1;
    }
    c->table = PyTuple_GET_ITEM(ctx, 0);
    c->learn = PyTuple_GET_ITEM(ctx, 1);
    c->resource = PyTuple_GET_ITEM(ctx, 2);
    c->max_attributes = PyLong_AsSsize_t(PyTuple_GET_ITEM(ctx, 3));
    c->outcome_key = PyTuple_GET_ITEM(ctx, 4);
    c->first_token_events = PyTuple_GET_ITEM(ctx, 5);
    c->max_name_length = PyLong_AsSsize_t(PyTuple_GET_ITEM(ctx, 6));
    c->span_name = PyTuple_GET_ITEM(ctx, 7);
    c->record_type = PyTuple_GET_ITEM(ctx, 8);
    c->id_problem = PyTuple_GET_ITEM(ctx, 9);
    c->too_many = PyTuple_GET_ITEM(ctx, 10);
    c->rules = PyTuple_GET_ITEM(ctx, 11);
    c->max_value_length = PyLong_AsSsize_t(PyTuple_GET_ITEM(ctx, 12));
    c->max_bytes = PyLong_AsSsize_t(PyTuple_GET_ITEM(ctx, 13));
    c->max_entries = PyLong_AsSsize_t(PyTuple_GET_ITEM(ctx, 14));
    if (PyErr_Occurred())
        return -1;
    if (!PyDict_Check(c->table) || !PyDict_Check(c->rules) || !PyUnicode_Check(c->outcome_key) || !PyType_Check(c->record_type) ||
        !PyType_IsSubtype((PyTypeObject *)c->record_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "walk: a context field has the wrong type");
        return -1;
    }
    return 0;
}

/* Decode the spans of one ResourceSpans whose positions are [first, last) of the request's; `position`
 * is its first span's. */
static int one_resource(const Context *c, const Slice *rs_body, Py_ssize_t first, Py_ssize_t last,
                        Py_ssize_t *position, Out *out) {
    Slices resource = {0}, scope_spans = {0}; /* of the ResourceSpans */
    Slices scopes = {0}, spans = {0};         /* of one of its ScopeSpans */
    PyObject *raws = NULL, *res = NULL;
    Where w = {0};
    int status = fields_1_and_2(rs_body, &resource, &scope_spans);
    if (status)
        goto done;
    if (last >= 0) { /* a part: skip a resource none of whose spans is in it */
        Py_ssize_t n = 0, k;
        for (Py_ssize_t i = 0; i < scope_spans.n; i++) {
            if ((status = count_spans(&scope_spans.v[i], &k)) != 0)
                goto done;
            n += k;
        }
        if (*position + n <= first || *position >= last) {
            *position += n;
            goto done;
        }
    }
    raws = PyList_New(0);
    if (raws == NULL || (status = resource_attributes(&resource, raws)) != 0) {
        status = status ? status : -1;
        goto done;
    }
    res = PyObject_CallOneArg(c->resource, raws);
    if (res == NULL) { status = -1; goto done; }
    if (!PyTuple_Check(res) || PyTuple_GET_SIZE(res) != 4) {
        PyErr_SetString(PyExc_TypeError, "walk: the resource function returns a 4-tuple");
        status = -1;
        goto done;
    }
    w.res = PyTuple_GET_ITEM(res, 0);
    w.service = PyTuple_GET_ITEM(res, 1);
    w.instance = PyTuple_GET_ITEM(res, 2);
    w.problem = PyTuple_GET_ITEM(res, 3);
    if (!PyDict_Check(w.res) || !PyUnicode_Check(w.problem)) {
        PyErr_SetString(PyExc_TypeError, "walk: the resource function returns (dict, str, str, str)");
        status = -1;
        goto done;
    }
    for (Py_ssize_t i = 0; i < scope_spans.n && status == 0; i++) {
        Slice name = {"", 0}, version = {"", 0};
        scopes.n = spans.n = 0;
        if ((status = fields_1_and_2(&scope_spans.v[i], &scopes, &spans)) != 0 ||
            (status = scope(&scopes, &name, &version)) != 0)
            break;
        Py_ssize_t from = 0, to = spans.n;
        if (last >= 0) {
            from = first - *position > 0 ? first - *position : 0;
            to = last - *position > 0 ? last - *position : 0;
            if (to > spans.n)
                to = spans.n;
            *position += spans.n;
        }
        if ((status = text(&name, &w.scope_name)) == 0)
            status = text(&version, &w.scope_version);
        for (Py_ssize_t j = from; j < to && status == 0; j++)
            status = span(c, &w, &spans.v[j], out);
        Py_CLEAR(w.scope_name);
        Py_CLEAR(w.scope_version);
    }
done:
    Py_XDECREF(raws);
    Py_XDECREF(res);
    clear(&resource);
    clear(&scope_spans);
    clear(&scopes);
    clear(&spans);
    return status;
}

static PyObject *walk(PyObject *module, PyObject *args) {
    Py_buffer body;
    PyObject *ctx;
    Py_ssize_t first, last;
    Context c;
    (void)module;
    if (!PyArg_ParseTuple(args, "y*Onn:walk", &body, &ctx, &first, &last))
        return NULL;
    if (parse_context(ctx, &c)) {
        PyBuffer_Release(&body);
        return NULL;
    }
    Out out = {PyList_New(0), 0, PyUnicode_New(0, 0)};
    int status = out.records == NULL || out.reason == NULL ? -1 : 0;
    const char *p = body.buf, *end = p + body.len;
    Py_ssize_t position = 0;
    Field f;
    while (status == 0 && p < end) {
        if (next_field(&p, end, &f)) {
            status = OTHERWISE;
            break;
        }
        if (f.number == 1) {
            if (f.wt != WT_LEN) {
                status = OTHERWISE;
                break;
            }
            status = one_resource(&c, &f.bytes, first, last, &position, &out);
        }
    }
    PyBuffer_Release(&body);
    if (status) {
        Py_XDECREF(out.records);
        Py_XDECREF(out.reason);
        if (status < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    return Py_BuildValue("(NnN)", out.records, out.rejected, out.reason);
}

static PyMethodDef methods[] = {
    {"walk", walk, METH_VARARGS,
     "walk(body, context, first, last) -> (records, rejected, reason) | None: the spans of a body upb "
     "has parsed (positions [first, last), or every one when last < 0); None where the Python decoder "
     "must read it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "tokenbook.collector.decode._walk",
    "The OTLP trace request's envelope walked in C (see `tokenbook.collector.decode.spans`).", -1, methods,
};

PyMODINIT_FUNC PyInit__walk(void) {
    return PyModule_Create(&module);
}
