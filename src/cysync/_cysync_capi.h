/* _cysync_capi.h - the parts of the Cython layer written against the
 * CPython C API directly: calling conventions Cython cannot spell cheaply.
 * Included by _cysync.pyx (cdef extern from "_cysync_capi.h"); built under
 * the same -Wall -Wextra gate as cext/: .ci/run compiles it with -Werror
 * against every interpreter's headers.  Version-dependent calls are guarded
 * by PY_VERSION_HEX where they are made.
 */
#ifndef CYSYNC_CAPI_H
#define CYSYNC_CAPI_H

#include <Python.h>
#include <string.h>

#include "cy_once.h"

/* Error messages that C raises, set at import from cysync._rules (which
 * keeps them alive): the strings are defined there once. */
static PyObject *cysync_msg_fn_not_callable;
static PyObject *cysync_msg_defer_outside;

/* ------------------------------------------------------------------ spinning */

/* A waiter that got its unit, flag or release while spinning lingers up
 * to this long for the releasing thread to start waiting (cy_spin.h):
 * the releaser holds the GIL until then, and taking the GIL before it
 * lets go means a sleep and a second wake-up.  Without a GIL, nothing
 * to wait for. */
#ifdef Py_GIL_DISABLED
#define CYSYNC_LINGER_NS 0
#else
#define CYSYNC_LINGER_NS 2000
#endif

/* ------------------------------------------------------------------ Once.do, type patches */

/* Once.do as a METH_FASTCALL | METH_KEYWORDS method.  A Cython
 * `def do(self, fn, /, *args, **kwargs)` builds a tuple and a dict on
 * every call (about 12 ns, half the cost of a done Once); this reads the
 * state first and builds them only on the slow path, which is
 * _once_do_slow in _cysync.pyx. */
static Py_ssize_t cysync_once_offset;  /* where Once keeps its cy_once */
static PyObject *(*cysync_once_do_slow)(PyObject *, PyObject *, PyObject *, PyObject *);

static PyObject *cysync_once_do(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames)
{
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0, i;
    PyObject *rest, *kwargs, *r = NULL;
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "do() missing required argument 'fn' (pos 1)");
        return NULL;
    }
    if (!PyCallable_Check(args[0])) {
        PyErr_SetObject(PyExc_TypeError, cysync_msg_fn_not_callable);
        return NULL;
    }
    if (cy_once_is_done((cy_once *)((char *)self + cysync_once_offset)))
        Py_RETURN_NONE;
    rest = PyTuple_New(nargs - 1);
    kwargs = PyDict_New();
    if (rest && kwargs) {
        for (i = 1; i < nargs; i++)
            PyTuple_SET_ITEM(rest, i - 1, Py_NewRef(args[i]));
        for (i = 0; i < nkw; i++)
            if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0)
                break;
        if (i == nkw)
            r = cysync_once_do_slow(self, args[0], rest, kwargs);
    }
    Py_XDECREF(rest);
    Py_XDECREF(kwargs);
    return r;
}

static PyMethodDef cysync_once_do_def = {
    "do", (PyCFunction)(void (*)(void))cysync_once_do, METH_FASTCALL | METH_KEYWORDS,
    "do($self, fn, /, *args, **kwargs)\n--\n\n"
    "Call fn(*args, **kwargs) if no call of do on this Once has called it yet.\n\n"
    "Concurrent callers wait until that call returns.  If fn raises, the\n"
    "exception goes to its caller and the Once still counts as done."};

/* Sets an attribute of a type made by Cython (static types refuse
 * setattr), at import, before any instance exists. */
static int cysync_type_set(PyObject *type, const char *name, PyObject *value)
{
    int rc = PyDict_SetItemString(((PyTypeObject *)type)->tp_dict, name, value);
    PyType_Modified((PyTypeObject *)type);
    return rc;
}

/* Presents a Cython type as cysync.<Name>: a static type's __module__
 * comes from its tp_name.  The type lives as long as the process, and so
 * does the name. */
static int cysync_type_rename(PyObject *type)
{
    PyTypeObject *t = (PyTypeObject *)type;
    const char *dot = strrchr(t->tp_name, '.'), *base = dot ? dot + 1 : t->tp_name;
    size_t n = strlen(base) + sizeof "cysync.";
    char *name = (char *)PyMem_RawMalloc(n);
    if (name == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    snprintf(name, n, "cysync.%s", base);
    t->tp_name = name;
    PyType_Modified(t);
    return 0;
}

static PyObject *cysync_once_do_descr(PyObject *type)
{
    return PyDescr_NewMethod((PyTypeObject *)type, &cysync_once_do_def);
}

/* ------------------------------------------------------------------ defer */

/* Go's defer.  A @deferrable call pushes a frame (on its own C stack) as
 * this thread's innermost; defer() appends to the frame's list; when the
 * wrapped function returns or raises, _run_deferred (in _cysync.pyx) runs
 * the list.  The call itself is a vectorcall written here in C: built in
 * Cython, the star-args of __call__ cost more than the whole
 * defer machinery. */
typedef struct cysync_defer_frame {
    PyObject *calls; /* the first deferred call, then a list of them */
    struct cysync_defer_frame *prev;
} cysync_defer_frame;

#if defined(_MSC_VER) && !defined(__clang__)
static __declspec(thread) cysync_defer_frame *cysync_defer_top;
#else
static _Thread_local cysync_defer_frame *cysync_defer_top;
#endif

static Py_ssize_t cysync_deferrable_func_offset; /* where _Deferrable keeps func */
static PyObject *(*cysync_run_deferred)(PyObject *calls, PyObject *pending);

/* The exception being raised, as one object with its traceback. */
static PyObject *cysync_take_exception(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL)
        PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

static void cysync_raise_exception(PyObject *exc) /* steals exc */
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
#endif
}

static PyObject *cysync_deferrable_call(PyObject *self, PyObject *const *args, size_t nargsf,
                                        PyObject *kwnames)
{
    PyObject *func = *(PyObject **)((char *)self + cysync_deferrable_func_offset);
    cysync_defer_frame frame = {NULL, cysync_defer_top};
    cysync_defer_top = &frame;
    PyObject *result = PyObject_Vectorcall(func, args, nargsf, kwnames);
    cysync_defer_top = frame.prev;
    if (frame.calls == NULL)
        return result;
    PyObject *calls = frame.calls, *body_exc = NULL, *err;
    if (!PyList_CheckExact(calls)) {
        if (result != NULL && !PyTuple_CheckExact(calls)) {
            /* The usual case, one defer(x.release) and nothing raised:
             * call it here; what it raises is what a finally would. */
            err = PyObject_CallNoArgs(calls);
            Py_DECREF(calls);
            if (err == NULL) {
                Py_DECREF(result);
                return NULL;
            }
            Py_DECREF(err);
            return result;
        }
        PyObject *list = PyList_New(1);
        if (list == NULL) {
            Py_DECREF(calls);
            Py_XDECREF(result);
            return NULL;
        }
        PyList_SET_ITEM(list, 0, calls); /* steals */
        calls = list;
    }
    if (result == NULL)
        body_exc = cysync_take_exception();
    err = cysync_run_deferred(calls, body_exc ? body_exc : Py_None);
    Py_DECREF(calls);
    Py_XDECREF(body_exc);
    if (err == Py_None) { /* nothing raised anywhere */
        Py_DECREF(err);
        return result;
    }
    Py_XDECREF(result);
    if (err != NULL) /* NULL: _run_deferred itself failed, its error is set */
        cysync_raise_exception(err);
    return NULL;
}

static PyObject *cysync_defer(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames)
{
    cysync_defer_frame *frame = cysync_defer_top;
    PyObject *entry;
    (void)module;
    if (frame == NULL) {
        PyErr_SetObject(PyExc_RuntimeError, cysync_msg_defer_outside);
        return NULL;
    }
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "defer() missing required argument 'fn' (pos 1)");
        return NULL;
    }
    if (!PyCallable_Check(args[0])) {
        PyErr_SetObject(PyExc_TypeError, cysync_msg_fn_not_callable);
        return NULL;
    }
    if (nargs == 1 && kwnames == NULL) {
        entry = Py_NewRef(args[0]); /* the common defer(x.release): no tuple */
    } else {
        Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0, i;
        PyObject *rest = PyTuple_New(nargs - 1), *kwargs = PyDict_New();
        entry = NULL;
        if (rest && kwargs) {
            for (i = 1; i < nargs; i++)
                PyTuple_SET_ITEM(rest, i - 1, Py_NewRef(args[i]));
            for (i = 0; i < nkw; i++)
                if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0)
                    break;
            if (i == nkw)
                entry = PyTuple_Pack(3, args[0], rest, kwargs);
        }
        Py_XDECREF(rest);
        Py_XDECREF(kwargs);
        if (entry == NULL)
            return NULL;
    }
    if (frame->calls == NULL) {
        frame->calls = entry; /* most functions defer one call: no list */
        Py_RETURN_NONE;
    }
    if (!PyList_CheckExact(frame->calls)) {
        PyObject *list = PyList_New(1);
        if (list == NULL) {
            Py_DECREF(entry);
            return NULL;
        }
        PyList_SET_ITEM(list, 0, frame->calls); /* steals */
        frame->calls = list;
    }
    int rc = PyList_Append(frame->calls, entry);
    Py_DECREF(entry);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef cysync_defer_def = {
    "defer", (PyCFunction)(void (*)(void))cysync_defer, METH_FASTCALL | METH_KEYWORDS,
    "defer(fn, /, *args, **kwargs)\n--\n\n"
    "Run fn(*args, **kwargs) when the innermost running @deferrable call of\n"
    "this thread returns or raises; calls run last registered first."};

static PyObject *cysync_make_defer(PyObject *module_name)
{
    return PyCFunction_NewEx(&cysync_defer_def, NULL, module_name);
}

/* Makes a Cython type's instances vectorcall-able through a field of
 * theirs (set by the type's __cinit__), before any instance exists. */
static void cysync_enable_vectorcall(PyObject *type, Py_ssize_t offset)
{
    PyTypeObject *t = (PyTypeObject *)type;
    t->tp_vectorcall_offset = offset;
    t->tp_call = PyVectorcall_Call;
    t->tp_flags |= Py_TPFLAGS_HAVE_VECTORCALL;
    PyType_Modified(t);
}

/* ------------------------------------------------------------------ select */

/* select(*cases, timeout=None, ctx=None, default=False) as a METH_FASTCALL |
 * METH_KEYWORDS function: a Cython `def select(*cases, ...)` builds a tuple
 * of the cases and a dict of the keywords on every call (about 60 ns, more
 * than a ready select itself); here the cases stay in the caller's argument
 * array and the keywords are matched by name.  The rest is Cython's
 * _select_impl. */
static PyObject *(*cysync_select_impl)(PyObject *const *cases, Py_ssize_t n, PyObject *timeout, PyObject *ctx,
                                       int dflt);

/* The keywords, interned: names written in source code arrive interned,
 * so a pointer comparison usually decides (cysync_make_select makes them). */
static PyObject *cysync_kw_timeout, *cysync_kw_ctx, *cysync_kw_default;

static int cysync_kw_is(PyObject *name, PyObject *interned)
{
    return name == interned || PyUnicode_Compare(name, interned) == 0;
}

static PyObject *cysync_select(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *timeout = Py_None, *ctx = Py_None;
    int dflt = 0;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0, i;
    (void)module;
    for (i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i), *value = args[nargs + i];
        if (cysync_kw_is(name, cysync_kw_default)) {
            if ((dflt = PyObject_IsTrue(value)) < 0)
                return NULL;
        } else if (cysync_kw_is(name, cysync_kw_timeout)) {
            timeout = value;
        } else if (cysync_kw_is(name, cysync_kw_ctx)) {
            ctx = value;
        } else {
            PyErr_Format(PyExc_TypeError, "select() got an unexpected keyword argument '%U'", name);
            return NULL;
        }
    }
    return cysync_select_impl(args, nargs, timeout, ctx, dflt);
}

static PyMethodDef cysync_select_def = {
    "select", (PyCFunction)(void (*)(void))cysync_select, METH_FASTCALL | METH_KEYWORDS,
    "select(*cases, timeout=None, ctx=None, default=False)\n--\n\n"
    "Go's select: wait until one of the cases can proceed, perform exactly\n"
    "that one and return (index, value).\n\n"
    "A case is ch.recv, ch.recv_ok (value (v, ok)), the tuple (ch.send, value)\n"
    "(value None), or None (never fires).  Among ready cases one is chosen\n"
    "uniformly at random.  default=True: (-1, None) at once when none is\n"
    "ready; a timeout also returns (-1, None); a context that ends raises its\n"
    "error.  A recv case on a closed, drained channel or a send case on a\n"
    "closed channel raises ChanClosed."};

static PyObject *cysync_make_select(PyObject *module_name)
{
    /* Made once, at import, and kept for the life of the process. */
    if (!(cysync_kw_timeout = PyUnicode_InternFromString("timeout")) ||
        !(cysync_kw_ctx = PyUnicode_InternFromString("ctx")) ||
        !(cysync_kw_default = PyUnicode_InternFromString("default")))
        return NULL;
    return PyCFunction_NewEx(&cysync_select_def, NULL, module_name);
}

#endif /* CYSYNC_CAPI_H */
