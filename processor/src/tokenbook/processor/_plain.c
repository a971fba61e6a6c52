/* The span processor's path for spans with nothing for tokenbook, in C: `PlainSpans.on_start` and
 * `PlainSpans.on_end` take the place of `TokenbookSpanProcessor.on_start` and `.on_end` (bound on the
 * instance by `span_processor.py`) and do what their Python first checks do for a span of the SDK's
 * own classes, without a Python frame:
 *
 * - start: a span whose name is in the memo of plain names and none of whose start attribute keys is
 *   a kind or usage key is not looked at further; a local root is remembered as its trace's workflow
 *   (the table cleared when it holds `max_open` roots); then the wrapped processor's `on_start`, if any;
 * - end: a span of a plain name, without events, whose every attribute key is in the memo of inert keys,
 *   is handed on as it is, a local root's workflow entry dropped first.
 *
 * Anything else (another span class, a name or key not in the memos, events, a descendant mark held
 * by the tracker, a field that is not where the SDK keeps it) is handed to the Python method, which
 * decides from the start: nothing is changed before that choice. An exception of the wrapped processor
 * is handed to `failed` (the processor logs and counts it) and never reaches the application.
 * The memos, the workflow table and the marks are the processor's own objects, shared by reference
 * (cleared in place, never replaced). Everything runs under the GIL, like the Python it stands for.
 *
 * What it saves is the Python frame and bytecode of each method (its attribute reads are the generic
 * C lookups, not faster than the interpreter's cached ones) and, by `keys_are`'s memo of the last key
 * set, one set lookup per key. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* The fields of the SDK's spans read in place (never written), as `span_processor._sdk_span_types`
 * checks they are: `_name`, `_context`, `_parent`, `_attributes._dict` and `_events._dq`. */
static PyObject *s_name, *s_context, *s_parent, *s_attributes, *s_dict, *s_events, *s_dq;

/* The objects `PlainSpans` is given, as keyword arguments of the same names, in this order:
 * live_type, ended_type: the SDK's live and ended span classes;
 * start_plain_names: set or frozenset, the names `on_start` may skip at once;
 * plain_names: set, the names known not to read as an operation;
 * signal_keys: frozenset, the kind and usage keys;
 * inert: set, the attribute keys known to be neither signal nor content;
 * workflows: dict, trace id -> its local root;
 * marks: sized, the tracker's marks;
 * wrapped_on_start (callable, or None), wrapped_on_end: the wrapped processor's;
 * full_on_start, full_on_end: the Python methods;
 * failed_start, failed_end: called with a wrapped on_start's or on_end's exception. */
#define GIVEN_FIELDS(X)                                                                                  \
    X(live_type) X(ended_type) X(start_plain_names) X(plain_names) X(signal_keys) X(inert) X(workflows)  \
    X(marks) X(wrapped_on_start) X(wrapped_on_end) X(full_on_start) X(full_on_end) X(failed_start)      \
    X(failed_end)
/* Every object field: the given ones, and the key sets last found plain at start and at end (tuples,
 * in the order of their dicts: `keys_are`); all visited and cleared for the garbage collector. */
#define OBJECT_FIELDS(X) GIVEN_FIELDS(X) X(start_shape) X(end_shape)
#define DECLARE_FIELD(field) PyObject *field;

typedef struct {
    PyObject_HEAD
    OBJECT_FIELDS(DECLARE_FIELD)
    Py_ssize_t max_open;
} PlainSpans;

/* 1: `set` holds `key`; 0: it does not, or asking raised (the error is cleared: the Python path asks
 * again and decides). */
static int holds(PyObject *set, PyObject *key) {
    int found = PySet_Contains(set, key);
    if (found < 0) {
        PyErr_Clear();
        return 0;
    }
    return found;
}

/* `obj.first.second`, a new reference, or NULL with no error set. */
static PyObject *field2(PyObject *obj, PyObject *first, PyObject *second) {
    PyObject *outer = PyObject_GetAttr(obj, first);
    if (outer == NULL) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *inner = PyObject_GetAttr(outer, second);
    Py_DECREF(outer);
    if (inner == NULL)
        PyErr_Clear();
    return inner;
}

/* Whether every key of `attrs` (a dict) is in `set` (`all_in` 1) or none is (`all_in` 0).
 *
 * Whether a key is inert, or a kind or usage key, is a property of the key (the memo of inert keys is
 * cleared only to bound it): so the keys last found so, in their order (`*shape`, a tuple that holds
 * them, so no other object takes their identity), answer for a dict of the same keys, by identity.
 * The spans of one instrumentation point have the same keys in the same order. */
static int keys_are(PyObject *attrs, PyObject *set, int all_in, PyObject **shape) {
    Py_ssize_t pos = 0, i = 0;
    PyObject *key, *value;
    if (*shape != NULL && PyTuple_GET_SIZE(*shape) == PyDict_GET_SIZE(attrs)) {
        PyObject **known = &PyTuple_GET_ITEM(*shape, 0);
        while (PyDict_Next(attrs, &pos, &key, &value) && key == known[i])
            i++;
        if (i == PyDict_GET_SIZE(attrs))
            return 1;
        pos = 0;
    }
    while (PyDict_Next(attrs, &pos, &key, &value)) {
        int found = PySet_Contains(set, key);
        if (found < 0) {
            PyErr_Clear();
            return 0;
        }
        if (found != all_in)
            return 0;
    }
    PyObject *keys = PyDict_Keys(attrs);
    PyObject *held = keys == NULL ? NULL : PyList_AsTuple(keys);
    Py_XDECREF(keys);
    if (held == NULL)
        PyErr_Clear(); /* the answer stands; the next dict of these keys asks the set again */
    else
        Py_XSETREF(*shape, held);
    return 1;
}

/* Whether `span` (of the SDK's classes) is plain: its name in `names` and its attribute keys all in
 * `set` (`all_in` 1) or none in it (`all_in` 0); any failure reads as not plain (the error cleared). */
static int plain_span(PyObject *span, PyObject *names, PyObject *set, int all_in, PyObject **shape) {
    PyObject *name = PyObject_GetAttr(span, s_name);
    if (name == NULL) {
        PyErr_Clear();
        return 0;
    }
    int plain = holds(names, name);
    Py_DECREF(name);
    if (!plain)
        return 0;
    PyObject *attrs = field2(span, s_attributes, s_dict);
    if (attrs == NULL)
        return 0;
    plain = PyDict_Check(attrs) && keys_are(attrs, set, all_in, shape);
    Py_DECREF(attrs);
    return plain;
}

/* Whether `span` is a local root (its parent None or remote): 1 with `*trace_id` its trace ID (a new
 * reference); 0 when it is not, or has no context; -1 when its context or its parent's is not the
 * tuple `SpanContext` is (the error cleared). */
static int local_root(PyObject *span, PyObject **trace_id) {
    PyObject *own = PyObject_GetAttr(span, s_context);
    PyObject *parent = own == NULL ? NULL : PyObject_GetAttr(span, s_parent);
    int root = -1;
    if (parent == NULL)
        PyErr_Clear();
    else if (own == Py_None)
        root = 0;
    else if (PyTuple_Check(own) && PyTuple_GET_SIZE(own) >= 3) {
        if (parent == Py_None)
            root = 1;
        else if (PyTuple_Check(parent) && PyTuple_GET_SIZE(parent) >= 3) {
            root = PyObject_IsTrue(PyTuple_GET_ITEM(parent, 2));
            if (root < 0)
                PyErr_Clear();
        }
    }
    if (root == 1)
        *trace_id = Py_NewRef(PyTuple_GET_ITEM(own, 0));
    Py_XDECREF(own);
    Py_XDECREF(parent);
    return root;
}

/* Call `target(span[, parent_context])`, handing an `Exception` to `failed` (others propagate). */
static PyObject *hand_on(PyObject *target, PyObject *failed, PyObject *const *args, size_t nargs) {
    PyObject *result = PyObject_Vectorcall(target, args, nargs, NULL);
    if (result != NULL) {
        Py_DECREF(result);
        Py_RETURN_NONE;
    }
    if (!PyErr_ExceptionMatches(PyExc_Exception)) /* KeyboardInterrupt, SystemExit: as in Python */
        return NULL;
    PyObject *type, *exc, *traceback;
    PyErr_Fetch(&type, &exc, &traceback);
    PyErr_NormalizeException(&type, &exc, &traceback);
    if (traceback != NULL)
        PyException_SetTraceback(exc, traceback);
    PyObject *logged = PyObject_CallOneArg(failed, exc);
    Py_XDECREF(type);
    Py_XDECREF(exc);
    Py_XDECREF(traceback);
    if (logged == NULL)
        return NULL;
    Py_DECREF(logged);
    Py_RETURN_NONE;
}

static PyObject *on_start(PlainSpans *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (nargs + nkw != 2 && !(nargs == 1 && nkw == 0))
        goto full;
    if (nkw == 1 && PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "parent_context") != 0)
        goto full;
    PyObject *span = args[0];
    PyObject *parent_context = nargs + nkw == 2 ? args[1] : Py_None;
    if ((PyObject *)Py_TYPE(span) != self->live_type)
        goto full;
    if (!plain_span(span, self->start_plain_names, self->signal_keys, 0, &self->start_shape))
        goto full;
    PyObject *trace_id = NULL;
    int root = local_root(span, &trace_id);
    if (root < 0)
        goto full;
    if (root) { /* a local root: remembered as its trace's workflow until it ends */
        if (PyDict_GET_SIZE(self->workflows) >= self->max_open)
            PyDict_Clear(self->workflows);
        int failed = PyDict_SetItem(self->workflows, trace_id, span) < 0;
        Py_DECREF(trace_id);
        if (failed) {
            PyErr_Clear();
            goto full;
        }
    }
    if (self->wrapped_on_start == Py_None)
        Py_RETURN_NONE;
    PyObject *call[2] = {span, parent_context};
    return hand_on(self->wrapped_on_start, self->failed_start, call, 2);
full:
    return PyObject_Vectorcall(self->full_on_start, args, (size_t)nargs, kwnames);
}

static PyObject *on_end(PlainSpans *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    if (nargs != 1 || kwnames != NULL)
        goto full;
    PyObject *span = args[0];
    if ((PyObject *)Py_TYPE(span) != self->ended_type)
        goto full;
    Py_ssize_t marked = PyObject_Length(self->marks);
    if (marked != 0) { /* the tracker holds marks: the Python path passes them on */
        if (marked < 0)
            PyErr_Clear();
        goto full;
    }
    PyObject *events = field2(span, s_events, s_dq);
    if (events == NULL)
        goto full;
    Py_ssize_t n_events = PyObject_Length(events);
    Py_DECREF(events);
    if (n_events != 0) {
        if (n_events < 0)
            PyErr_Clear();
        goto full;
    }
    if (!plain_span(span, self->plain_names, self->inert, 1, &self->end_shape))
        goto full;
    PyObject *trace_id = NULL;
    int root = local_root(span, &trace_id);
    if (root < 0)
        goto full;
    if (root) { /* a local root ends: its workflow entry is dropped */
        int held = PyDict_Contains(self->workflows, trace_id);
        int failed = held < 0 || (held && PyDict_DelItem(self->workflows, trace_id) < 0);
        Py_DECREF(trace_id);
        if (failed) {
            PyErr_Clear();
            goto full;
        }
    }
    return hand_on(self->wrapped_on_end, self->failed_end, args, 1);
full:
    return PyObject_Vectorcall(self->full_on_end, args, (size_t)nargs, kwnames);
}

static int init(PlainSpans *self, PyObject *args, PyObject *kwds) {
#define NAME_FIELD(field) #field,
    static char *names[] = {GIVEN_FIELDS(NAME_FIELD) "max_open", NULL};
    struct {
        GIVEN_FIELDS(DECLARE_FIELD)
    } given;
    Py_ssize_t max_open;
#define ADDRESS_FIELD(field) &given.field,
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "$OOOOOOOOOOOOOOn", names, GIVEN_FIELDS(ADDRESS_FIELD)
                                     &max_open))
        return -1;
    if (!PyAnySet_Check(given.start_plain_names) || !PySet_Check(given.plain_names) ||
        !PyAnySet_Check(given.signal_keys) || !PySet_Check(given.inert) || !PyDict_Check(given.workflows)) {
        PyErr_SetString(PyExc_TypeError, "the name and key memos must be sets, the workflows a dict");
        return -1;
    }
#define SET_FIELD(field) Py_XSETREF(self->field, Py_NewRef(given.field));
    GIVEN_FIELDS(SET_FIELD)
    self->max_open = max_open;
    return 0;
}

static int traverse(PlainSpans *self, visitproc visit, void *arg) {
#define VISIT_FIELD(field) Py_VISIT(self->field);
    OBJECT_FIELDS(VISIT_FIELD)
    return 0;
}

static int clear_fields(PlainSpans *self) {
#define CLEAR_FIELD(field) Py_CLEAR(self->field);
    OBJECT_FIELDS(CLEAR_FIELD)
    return 0;
}

static void dealloc(PlainSpans *self) {
    PyObject_GC_UnTrack(self);
    clear_fields(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef methods[] = {
    {"on_start", (PyCFunction)(void (*)(void))on_start, METH_FASTCALL | METH_KEYWORDS,
     "on_start(span, parent_context=None): the plain span's start, else the Python on_start."},
    {"on_end", (PyCFunction)(void (*)(void))on_end, METH_FASTCALL | METH_KEYWORDS,
     "on_end(span): the plain span handed on as it is, else the Python on_end."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PlainSpansType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tokenbook.processor._plain.PlainSpans",
    .tp_basicsize = sizeof(PlainSpans),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The span processor's path for spans with nothing for tokenbook (see _plain.c).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)init,
    .tp_traverse = (traverseproc)traverse,
    .tp_clear = (inquiry)clear_fields,
    .tp_dealloc = (destructor)dealloc,
    .tp_methods = methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "tokenbook.processor._plain", "The span processor's plain-span path in C.", -1,
};

PyMODINIT_FUNC PyInit__plain(void) {
    s_name = PyUnicode_InternFromString("_name");
    s_context = PyUnicode_InternFromString("_context");
    s_parent = PyUnicode_InternFromString("_parent");
    s_attributes = PyUnicode_InternFromString("_attributes");
    s_dict = PyUnicode_InternFromString("_dict");
    s_events = PyUnicode_InternFromString("_events");
    s_dq = PyUnicode_InternFromString("_dq");
    if (!s_name || !s_context || !s_parent || !s_attributes || !s_dict || !s_events || !s_dq)
        return NULL;
    if (PyType_Ready(&PlainSpansType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "PlainSpans", (PyObject *)&PlainSpansType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
