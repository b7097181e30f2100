/* tidechain.core._cbor_native: compiled twins of `tidechain.core.cbor.decode_reference`
 * and `encode_reference`.
 *
 * The Python codec in cbor.py is the specification (deterministic CBOR, RFC 8949
 * section 4.2.1, tidechain's data model). `decode` accepts exactly what the reference
 * accepts and returns equal values; `encode` gives the reference's bytes. Both raise
 * ValueError for everything else, and cbor.py then asks the reference, which raises the
 * exact DecodeError or TooLarge (or, for a type the encoder leaves to it, encodes it),
 * so no error message lives here. tests/test_cbor_native.py checks each twin against
 * its reference. One structure has a twin too: the checks of `SignedTx.decode`, the
 * first thing a node does with every transaction it is sent (tests/test_tx_native.py).
 *
 * Safety rules followed throughout:
 * - every read is bounds-checked as `wanted > size - pos` (pos <= size always holds),
 *   never as `pos + wanted > size`, so a 64-bit length near 2**64 cannot wrap;
 * - container counts are checked against max_items, and against the bytes left, before
 *   anything is allocated (each array item takes at least one byte, each map entry two);
 * - decode_at nests at most max_depth + 2 calls deep, and max_depth is capped (1024);
 * - every error path releases what it holds.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The deepest nesting a caller may ask for: bounds the C stack whatever it passes. */
#define MAX_DEPTH_CAP 1024

typedef struct {
    const unsigned char *buf;
    size_t size;
    long max_depth;
    uint64_t max_items;
} Decoder;

static PyObject *decode_at(const Decoder *d, size_t *pos, long depth);

/* The limits both functions take as their arguments 2 and 3 (MAX_CBOR_DEPTH and
 * MAX_CBOR_ITEMS); OverflowError when out of range, so that a caller's mistake is never
 * a ValueError, which cbor.py would take for a refusal. Returns 0, or -1 with an error. */
static int
read_limits(PyObject *const *args, long *max_depth, Py_ssize_t *max_items)
{
    *max_depth = PyLong_AsLong(args[1]);
    if (*max_depth == -1 && PyErr_Occurred()) {
        return -1;
    }
    *max_items = PyLong_AsSsize_t(args[2]);
    if (*max_items == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (*max_depth < 0 || *max_depth > MAX_DEPTH_CAP || *max_items < 0) {
        PyErr_SetString(PyExc_OverflowError, "limits out of range (depth 0..1024, items >= 0)");
        return -1;
    }
    return 0;
}

static PyObject *
reject(const char *why)
{
    PyErr_SetString(PyExc_ValueError, why);
    return NULL;
}

/* The argument of the head whose additional information is `info` (the initial byte is
 * already consumed); rejects reserved values, indefinite lengths, truncation and
 * non-shortest forms exactly as cbor._read_argument does. Returns 0, or -1 with
 * ValueError set. */
static int
read_argument(const Decoder *d, size_t *pos, unsigned info, uint64_t *arg)
{
    size_t width;
    uint64_t value = 0, least;
    size_t i;

    if (info < 24) {
        *arg = info;
        return 0;
    }
    switch (info) {
    case 24: width = 1; least = 24; break;
    case 25: width = 2; least = 0x100; break;
    case 26: width = 4; least = 0x10000; break;
    case 27: width = 8; least = 0x100000000ULL; break;
    case 31:
        reject("indefinite length");
        return -1;
    default:
        reject("reserved additional information");
        return -1;
    }
    if (width > d->size - *pos) {
        reject("truncated argument");
        return -1;
    }
    for (i = 0; i < width; i++) {
        value = (value << 8) | d->buf[*pos + i];
    }
    if (value < least) {
        reject("argument not in shortest form");
        return -1;
    }
    *pos += width;
    *arg = value;
    return 0;
}

static PyObject *
negative_int(uint64_t arg)
{
    PyObject *magnitude, *result;

    if (arg <= (uint64_t)INT64_MAX) {
        return PyLong_FromLongLong(-1 - (long long)arg);
    }
    /* -1 - arg == ~arg for Python ints; arg >= 2**63 does not fit a long long. */
    magnitude = PyLong_FromUnsignedLongLong(arg);
    if (magnitude == NULL) {
        return NULL;
    }
    result = PyNumber_Invert(magnitude);
    Py_DECREF(magnitude);
    return result;
}

static PyObject *
decode_text(const unsigned char *start, size_t length)
{
    PyObject *text = PyUnicode_DecodeUTF8((const char *)start, (Py_ssize_t)length, "strict");

    if (text == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        return reject("text string is not valid UTF-8");
    }
    return text;
}

static PyObject *
decode_array(const Decoder *d, size_t *pos, long depth, uint64_t count)
{
    PyObject *list, *item;
    Py_ssize_t i;

    if (count > d->max_items) {
        return reject("too many array items");
    }
    if (count > d->size - *pos) { /* every item takes at least one byte */
        return reject("truncated array");
    }
    list = PyList_New((Py_ssize_t)count);
    if (list == NULL) {
        return NULL;
    }
    for (i = 0; i < (Py_ssize_t)count; i++) {
        item = decode_at(d, pos, depth + 1);
        if (item == NULL) {
            Py_DECREF(list); /* the slots not yet filled are NULL, which list_dealloc skips */
            return NULL;
        }
        PyList_SET_ITEM(list, i, item);
    }
    return list;
}

static PyObject *
decode_map(const Decoder *d, size_t *pos, long depth, uint64_t count)
{
    PyObject *dict, *key, *value;
    size_t previous_start = 0, previous_length = 0, key_start, key_length, common;
    unsigned key_major;
    uint64_t i;
    int order, status;

    if (count > d->max_items) {
        return reject("too many map entries");
    }
    if (count > (d->size - *pos) / 2) { /* every entry takes at least two bytes */
        return reject("truncated map");
    }
    dict = PyDict_New();
    if (dict == NULL) {
        return NULL;
    }
    for (i = 0; i < count; i++) {
        key_start = *pos;
        if (key_start >= d->size) {
            Py_DECREF(dict);
            return reject("truncated input");
        }
        key_major = d->buf[key_start] >> 5;
        if (key_major != 0 && key_major != 1 && key_major != 3) {
            Py_DECREF(dict);
            return reject("map keys must be integers or text strings");
        }
        key = decode_at(d, pos, depth + 1);
        if (key == NULL) {
            Py_DECREF(dict);
            return NULL;
        }
        /* Strictly increasing in the bytewise order of the keys' encodings. The first
         * key has nothing before it (the reference compares it with b"", which every
         * encoding exceeds). */
        key_length = *pos - key_start;
        if (i > 0) {
            common = previous_length < key_length ? previous_length : key_length;
            order = memcmp(d->buf + previous_start, d->buf + key_start, common);
            if (order > 0 || (order == 0 && previous_length >= key_length)) {
                Py_DECREF(key);
                Py_DECREF(dict);
                return reject("map keys not in deterministic order (or duplicated)");
            }
        }
        previous_start = key_start;
        previous_length = key_length;
        value = decode_at(d, pos, depth + 1);
        if (value == NULL) {
            Py_DECREF(key);
            Py_DECREF(dict);
            return NULL;
        }
        status = PyDict_SetItem(dict, key, value);
        Py_DECREF(key);
        Py_DECREF(value);
        if (status < 0) {
            Py_DECREF(dict);
            return NULL;
        }
    }
    return dict;
}

/* The item at *pos, nested `depth` deep; advances *pos past it. Mirrors cbor._decode_at. */
static PyObject *
decode_at(const Decoder *d, size_t *pos, long depth)
{
    unsigned initial, major, info;
    uint64_t arg;
    size_t start;

    if (depth > d->max_depth) {
        return reject("nesting too deep");
    }
    if (*pos >= d->size) {
        return reject("truncated input");
    }
    initial = d->buf[*pos];
    major = initial >> 5;
    info = initial & 0x1f;
    *pos += 1;
    if (major == 7) {
        switch (info) {
        case 20: Py_RETURN_FALSE;
        case 21: Py_RETURN_TRUE;
        case 22: Py_RETURN_NONE;
        default: return reject("floats and simple values other than false, true, null");
        }
    }
    if (read_argument(d, pos, info, &arg) < 0) {
        return NULL;
    }
    switch (major) {
    case 0:
        return PyLong_FromUnsignedLongLong(arg);
    case 1:
        return negative_int(arg);
    case 2:
    case 3:
        if (arg > d->size - *pos) {
            return reject("truncated string");
        }
        start = *pos;
        *pos += (size_t)arg;
        if (major == 2) {
            return PyBytes_FromStringAndSize((const char *)d->buf + start, (Py_ssize_t)arg);
        }
        return decode_text(d->buf + start, (size_t)arg);
    case 4:
        return decode_array(d, pos, depth, arg);
    case 5:
        return decode_map(d, pos, depth, arg);
    default: /* 6 */
        return reject("tags are not allowed");
    }
}

/* Exactly one item occupying all of buf[0..size). */
static PyObject *
decode_whole(const unsigned char *buf, size_t size, long max_depth, uint64_t max_items)
{
    Decoder d = {buf, size, max_depth, max_items};
    size_t pos = 0;
    PyObject *value = decode_at(&d, &pos, 0);

    if (value != NULL && pos != size) {
        Py_DECREF(value);
        return reject("trailing bytes after the item");
    }
    return value;
}

PyDoc_STRVAR(decode_doc,
"decode(buf: bytes, max_depth: int, max_items: int) -> object\n"
"--\n\n"
"Decode exactly one deterministic CBOR item occupying all of `buf`, as\n"
"tidechain.core.cbor.decode_reference does; ValueError for anything it refuses.");

static PyObject *
cbor_native_decode(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    long max_depth;
    Py_ssize_t max_items, length;
    char *data;

    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "decode() takes exactly 3 arguments");
        return NULL;
    }
    if (!PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "decode() argument 1 must be bytes");
        return NULL;
    }
    if (read_limits(args, &max_depth, &max_items) < 0) {
        return NULL;
    }
    if (PyBytes_AsStringAndSize(args[0], &data, &length) < 0) {
        return NULL;
    }
    return decode_whole((const unsigned char *)data, (size_t)length, max_depth,
                        (uint64_t)max_items);
}

/* --- one structure: a signed transaction -------------------------------------------
 *
 * The twin of the checks `SignedTx.decode` (tidechain/ledger/types.py) makes after its
 * size check: the envelope is a map of exactly "sig" (64 bytes) and "body" (a byte
 * string of at most max_tx_bytes), and the body decodes to a map of exactly the eight
 * fields of `TxBody.from_cbor`, each of its type and range. It returns the fields; the
 * caller hashes the body and builds the objects. ValueError for anything else, and
 * types.py then asks the reference, which raises the exact typed rejection.
 *
 * Both maps are deterministic, so their keys arrive in one order only (shortest
 * encoding first, then bytewise): checking the count and each key in that order is
 * checking the exact key set. The numeric bounds come from Python, as one tuple, so
 * that types.py and limits.py stay their only home. */

static const char *const ENVELOPE_KEYS[] = {"sig", "body"};
enum { ENVELOPE_SIG, ENVELOPE_BODY, ENVELOPE_FIELDS };
static const char *const BODY_KEYS[] = {
    "v", "exp", "args", "from", "chain", "nonce", "method", "contract",
};
enum { BODY_V, BODY_EXP, BODY_ARGS, BODY_FROM, BODY_CHAIN, BODY_NONCE, BODY_METHOD,
       BODY_CONTRACT, BODY_FIELDS };

typedef struct {
    Py_ssize_t format_version, hash_bytes, public_key_bytes, signature_bytes;
    Py_ssize_t min_nonce_bytes, max_nonce_bytes, max_ident_bytes, max_tx_bytes;
} TxLimits;

/* The values of `map` (a dict from the decoder) in key order, borrowed, if its keys are
 * exactly `names`; -1 with ValueError otherwise. */
static int
exact_fields(PyObject *map, const char *const *names, Py_ssize_t count, PyObject **values)
{
    PyObject *key, *value;
    Py_ssize_t at = 0, i = 0;

    if (!PyDict_CheckExact(map) || PyDict_GET_SIZE(map) != count) {
        reject("not a map of the expected fields");
        return -1;
    }
    while (PyDict_Next(map, &at, &key, &value)) {
        if (!PyUnicode_CheckExact(key) || PyUnicode_CompareWithASCIIString(key, names[i]) != 0) {
            reject("unexpected field");
            return -1;
        }
        values[i++] = value;
    }
    return 0;
}

static int
bytes_of_length(PyObject *value, Py_ssize_t low, Py_ssize_t high)
{
    return PyBytes_CheckExact(value) && PyBytes_GET_SIZE(value) >= low
           && PyBytes_GET_SIZE(value) <= high;
}

/* `_uint`: an int (never a bool: the decoder makes exact ints), not negative; its
 * value in *out. The decoder's ints lie in -2**64..2**64-1, so a failed conversion
 * means a negative one. */
static int
as_uint(PyObject *value, unsigned long long *out)
{
    if (!PyLong_CheckExact(value)) {
        return 0;
    }
    *out = PyLong_AsUnsignedLongLong(value);
    if (*out == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}

/* `_ident`: 1..max_bytes ASCII characters (for ASCII, characters are bytes). */
static int
is_ident(PyObject *value, Py_ssize_t max_bytes)
{
    return PyUnicode_CheckExact(value) && PyUnicode_IS_ASCII(value)
           && PyUnicode_GET_LENGTH(value) > 0 && PyUnicode_GET_LENGTH(value) <= max_bytes;
}

static PyObject *
signed_tx_fields(PyObject *body_bytes, PyObject *signature, PyObject *body,
                 const TxLimits *lim)
{
    PyObject *f[BODY_FIELDS];
    unsigned long long version, expires;

    if (exact_fields(body, BODY_KEYS, BODY_FIELDS, f) < 0) {
        return NULL;
    }
    if (!as_uint(f[BODY_V], &version) || version != (unsigned long long)lim->format_version
        || !bytes_of_length(f[BODY_FROM], lim->public_key_bytes, lim->public_key_bytes)
        || !bytes_of_length(f[BODY_NONCE], lim->min_nonce_bytes, lim->max_nonce_bytes)
        || !PyDict_CheckExact(f[BODY_ARGS])
        || !bytes_of_length(f[BODY_CHAIN], lim->hash_bytes, lim->hash_bytes)
        || !as_uint(f[BODY_EXP], &expires)
        || !is_ident(f[BODY_CONTRACT], lim->max_ident_bytes)
        || !is_ident(f[BODY_METHOD], lim->max_ident_bytes)) {
        return reject("a body field out of type or range");
    }
    return PyTuple_Pack(9, body_bytes, signature, f[BODY_CHAIN], f[BODY_FROM], f[BODY_NONCE],
                        f[BODY_EXP], f[BODY_CONTRACT], f[BODY_METHOD], f[BODY_ARGS]);
}

PyDoc_STRVAR(decode_signed_tx_doc,
"decode_signed_tx(buf: bytes, max_depth: int, max_items: int, limits: tuple) -> tuple\n"
"--\n\n"
"(body_bytes, signature, chain_id, sender, nonce, expires_ms, contract, method, args)\n"
"of a transaction envelope that SignedTx.decode accepts (after its size check);\n"
"ValueError for anything it refuses. `limits` is (format_version, hash_bytes,\n"
"public_key_bytes, signature_bytes, min_nonce_bytes, max_nonce_bytes, max_ident_bytes,\n"
"max_tx_bytes).");

static PyObject *
cbor_native_decode_signed_tx(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    TxLimits lim;
    PyObject *envelope, *body = NULL, *body_bytes, *signature, *result = NULL;
    PyObject *outer[ENVELOPE_FIELDS];
    long max_depth;
    Py_ssize_t max_items;

    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "decode_signed_tx() takes exactly 4 arguments");
        return NULL;
    }
    if (!PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "decode_signed_tx() argument 1 must be bytes");
        return NULL;
    }
    if (read_limits(args, &max_depth, &max_items) < 0) {
        return NULL;
    }
    if (!PyArg_ParseTuple(args[3], "nnnnnnnn:limits", &lim.format_version, &lim.hash_bytes,
                          &lim.public_key_bytes, &lim.signature_bytes, &lim.min_nonce_bytes,
                          &lim.max_nonce_bytes, &lim.max_ident_bytes, &lim.max_tx_bytes)) {
        return NULL;
    }
    envelope = decode_whole((const unsigned char *)PyBytes_AS_STRING(args[0]),
                            (size_t)PyBytes_GET_SIZE(args[0]), max_depth, (uint64_t)max_items);
    if (envelope == NULL) {
        return NULL;
    }
    if (exact_fields(envelope, ENVELOPE_KEYS, ENVELOPE_FIELDS, outer) < 0) {
        goto done;
    }
    signature = outer[ENVELOPE_SIG];
    body_bytes = outer[ENVELOPE_BODY];
    if (!bytes_of_length(signature, lim.signature_bytes, lim.signature_bytes)
        || !bytes_of_length(body_bytes, 0, lim.max_tx_bytes)) {
        reject("not a transaction envelope");
        goto done;
    }
    body = decode_whole((const unsigned char *)PyBytes_AS_STRING(body_bytes),
                        (size_t)PyBytes_GET_SIZE(body_bytes), max_depth, (uint64_t)max_items);
    if (body != NULL) {
        result = signed_tx_fields(body_bytes, signature, body, &lim);
    }
done:
    Py_XDECREF(body);
    Py_DECREF(envelope);
    return result;
}

/* --- the encoder ------------------------------------------------------------------
 *
 * The twin of `cbor.encode_reference`, for the exact types our structures are built of:
 * str, bytes, int (and int/str subclasses, whose values encode as the reference
 * encodes them), bool, None, list, tuple, dict and cbor.Encoded. Anything else, and
 * anything the reference would refuse (an integer beyond 64 bits, a lone surrogate, a
 * bool or other non-int, non-text map key, a duplicate key, too deep, too many items),
 * raises ValueError: cbor.encode then asks the reference, which encodes it or raises
 * the exact DecodeError or TooLarge. No Python code runs while a value is walked. */

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} Out;

typedef struct {
    long max_depth;
    Py_ssize_t max_items;
    PyObject *encoded_type; /* cbor.Encoded */
} Encoder;

static int
out_reserve(Out *out, size_t more)
{
    size_t want;
    char *grown;

    if (more <= out->cap - out->len) {
        return 0;
    }
    if (more > (size_t)PY_SSIZE_T_MAX - out->len) {
        PyErr_NoMemory();
        return -1;
    }
    want = out->cap ? out->cap : 256;
    while (want - out->len < more) {
        want = (want > (size_t)PY_SSIZE_T_MAX / 2) ? out->len + more : want * 2;
    }
    grown = PyMem_Realloc(out->data, want);
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    out->data = grown;
    out->cap = want;
    return 0;
}

static int
out_bytes(Out *out, const char *data, size_t len)
{
    if (out_reserve(out, len) < 0) {
        return -1;
    }
    if (len) {
        memcpy(out->data + out->len, data, len);
    }
    out->len += len;
    return 0;
}

/* The head of an item in its shortest form (cbor._head). */
static int
out_head(Out *out, unsigned major, uint64_t arg)
{
    unsigned char head[9];
    size_t n, i;
    unsigned char mt = (unsigned char)(major << 5);

    if (arg < 24) {
        head[0] = (unsigned char)(mt | arg);
        n = 1;
    } else if (arg < 0x100) {
        head[0] = mt | 24;
        n = 2;
    } else if (arg < 0x10000) {
        head[0] = mt | 25;
        n = 3;
    } else if (arg < 0x100000000ULL) {
        head[0] = mt | 26;
        n = 5;
    } else {
        head[0] = mt | 27;
        n = 9;
    }
    for (i = 1; i < n; i++) {
        head[i] = (unsigned char)(arg >> (8 * (n - 1 - i)));
    }
    return out_bytes(out, (const char *)head, n);
}

static int
refuse(const char *why)
{
    PyErr_SetString(PyExc_ValueError, why);
    return -1;
}

/* An int (or int subclass) in -2**64 .. 2**64-1, as cbor._encode_int writes it. */
static int
encode_int(Out *out, PyObject *value)
{
    int overflow = 0;
    long long small = PyLong_AsLongLongAndOverflow(value, &overflow);
    unsigned long long big;
    PyObject *inverted;

    if (small == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (!overflow) {
        if (small >= 0) {
            return out_head(out, 0, (uint64_t)small);
        }
        return out_head(out, 1, (uint64_t)(-(small + 1)));
    }
    if (overflow > 0) {
        big = PyLong_AsUnsignedLongLong(value);
        if (big == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            return refuse("integer beyond 64 bits");
        }
        return out_head(out, 0, big);
    }
    inverted = PyNumber_Invert(value); /* -1 - value: non-negative */
    if (inverted == NULL) {
        return -1;
    }
    big = PyLong_AsUnsignedLongLong(inverted);
    Py_DECREF(inverted);
    if (big == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return refuse("integer beyond 64 bits");
    }
    return out_head(out, 1, big);
}

static int
encode_text(Out *out, PyObject *value)
{
    Py_ssize_t len;
    const char *utf8 = PyUnicode_AsUTF8AndSize(value, &len);

    if (utf8 == NULL) { /* a lone surrogate has no UTF-8 form */
        PyErr_Clear();
        return refuse("text not encodable as UTF-8");
    }
    if (out_head(out, 3, (uint64_t)len) < 0) {
        return -1;
    }
    return out_bytes(out, utf8, (size_t)len);
}

typedef struct {
    char *key; /* the key's own encoding, in `keys` */
    size_t key_len;
    PyObject *value; /* borrowed from the dict */
} Entry;

static int
entry_order(const void *a, const void *b)
{
    const Entry *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);

    if (c != 0) {
        return c;
    }
    return (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

static int encode_into(const Encoder *e, Out *out, PyObject *value, long depth);

/* A map: keys are ints (not bools) or text, emitted in the bytewise order of their own
 * encodings, with no two equal (cbor._encode_map and _map_order). */
static int
encode_map(const Encoder *e, Out *out, PyObject *value, long depth)
{
    Py_ssize_t n = PyDict_GET_SIZE(value), i = 0, k = 0;
    PyObject *key, *item;
    Entry *entries = NULL;
    Out keys = {NULL, 0, 0};
    size_t *offsets = NULL;
    int status = -1;

    if (n > e->max_items) {
        return refuse("map too large");
    }
    if (out_head(out, 5, (uint64_t)n) < 0) {
        return -1;
    }
    if (n == 0) {
        return 0;
    }
    entries = PyMem_Calloc((size_t)n, sizeof(Entry));
    offsets = PyMem_Calloc((size_t)n, sizeof(size_t));
    if (entries == NULL || offsets == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    while (PyDict_Next(value, &i, &key, &item)) {
        if (k >= n) { /* cannot happen: no Python code runs while we walk */
            refuse("dict changed size");
            goto done;
        }
        offsets[k] = keys.len;
        if (PyUnicode_Check(key)) {
            if (encode_text(&keys, key) < 0) {
                goto done;
            }
        } else if (PyLong_Check(key) && !PyBool_Check(key)) {
            if (encode_int(&keys, key) < 0) {
                goto done;
            }
        } else {
            refuse("map key neither an integer nor text");
            goto done;
        }
        entries[k].key_len = keys.len - offsets[k];
        entries[k].value = item;
        k++;
    }
    if (k != n) {
        refuse("dict changed size");
        goto done;
    }
    /* Pointers only now: `keys` may have moved while it grew. */
    for (k = 0; k < n; k++) {
        entries[k].key = keys.data + offsets[k];
    }
    qsort(entries, (size_t)n, sizeof(Entry), entry_order);
    for (k = 0; k < n; k++) {
        if (k > 0 && entry_order(&entries[k - 1], &entries[k]) == 0) {
            refuse("duplicate map key");
            goto done;
        }
        if (out_bytes(out, entries[k].key, entries[k].key_len) < 0 ||
            encode_into(e, out, entries[k].value, depth + 1) < 0) {
            goto done;
        }
    }
    status = 0;
done:
    PyMem_Free(entries);
    PyMem_Free(offsets);
    PyMem_Free(keys.data);
    return status;
}

static int
encode_into(const Encoder *e, Out *out, PyObject *value, long depth)
{
    PyTypeObject *kind = Py_TYPE(value);
    Py_ssize_t n, i;

    if (depth > e->max_depth) {
        return refuse("nesting too deep");
    }
    if (kind == &PyUnicode_Type) {
        return encode_text(out, value);
    }
    if (kind == &PyBytes_Type) {
        n = PyBytes_GET_SIZE(value);
        if (out_head(out, 2, (uint64_t)n) < 0) {
            return -1;
        }
        return out_bytes(out, PyBytes_AS_STRING(value), (size_t)n);
    }
    if (kind == &PyLong_Type) {
        return encode_int(out, value);
    }
    if (kind == &PyDict_Type) {
        return encode_map(e, out, value, depth);
    }
    if ((PyObject *)kind == e->encoded_type) {
        PyObject *data = PyObject_GetAttrString(value, "data");
        int status;

        if (data == NULL) {
            return -1;
        }
        if (!PyBytes_CheckExact(data)) {
            Py_DECREF(data);
            return refuse("Encoded.data is not bytes");
        }
        status = out_bytes(out, PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data));
        Py_DECREF(data);
        return status;
    }
    if (value == Py_True) {
        return out_bytes(out, "\xf5", 1);
    }
    if (value == Py_False) {
        return out_bytes(out, "\xf4", 1);
    }
    if (value == Py_None) {
        return out_bytes(out, "\xf6", 1);
    }
    if (PyLong_Check(value)) { /* an int subclass (IntEnum): its value, as the reference */
        return encode_int(out, value);
    }
    if (PyUnicode_Check(value)) { /* a str subclass (StrEnum): its text */
        return encode_text(out, value);
    }
    if (kind == &PyList_Type || kind == &PyTuple_Type) {
        n = kind == &PyList_Type ? PyList_GET_SIZE(value) : PyTuple_GET_SIZE(value);
        if (n > e->max_items) {
            return refuse("array too large");
        }
        if (out_head(out, 4, (uint64_t)n) < 0) {
            return -1;
        }
        /* A list's size is read again each time: nothing here can change it, but the
         * bound check costs nothing. */
        for (i = 0; i < n; i++) {
            PyObject *item;
            if (kind == &PyList_Type) {
                if (i >= PyList_GET_SIZE(value)) {
                    return refuse("list changed size");
                }
                item = PyList_GET_ITEM(value, i);
            } else {
                item = PyTuple_GET_ITEM(value, i);
            }
            if (encode_into(e, out, item, depth + 1) < 0) {
                return -1;
            }
        }
        return 0;
    }
    /* bytearray, memoryview, subclasses of bytes, list, tuple or dict, and everything
     * outside the data model: the reference decides. */
    return refuse("not a type the compiled encoder takes");
}

static PyObject *
cbor_encode(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Encoder e;
    Out out = {NULL, 0, 0};
    PyObject *result = NULL;
    long max_depth;
    Py_ssize_t max_items;

    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "encode(value, max_depth, max_items, encoded_type) takes 4 arguments");
        return NULL;
    }
    if (read_limits(args, &max_depth, &max_items) < 0) {
        return NULL;
    }
    if (!PyType_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "encoded_type must be a type");
        return NULL;
    }
    e.max_depth = max_depth;
    e.max_items = max_items;
    e.encoded_type = args[3];
    if (encode_into(&e, &out, args[0], 0) == 0) {
        result = PyBytes_FromStringAndSize(out.data ? out.data : "", (Py_ssize_t)out.len);
    }
    PyMem_Free(out.data);
    return result;
}

static PyMethodDef cbor_native_methods[] = {
    {"decode", (PyCFunction)(void (*)(void))cbor_native_decode, METH_FASTCALL, decode_doc},
    {"decode_signed_tx", (PyCFunction)(void (*)(void))cbor_native_decode_signed_tx,
     METH_FASTCALL, decode_signed_tx_doc},
    {"encode", (PyCFunction)(void (*)(void))cbor_encode, METH_FASTCALL,
     "encode(value, max_depth, max_items, encoded_type): the bytes cbor.encode_reference "
     "gives; ValueError wherever it raises, or for a type it leaves to the reference."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef cbor_native_module = {
    PyModuleDef_HEAD_INIT,
    "tidechain.core._cbor_native",
    "Compiled twins of tidechain.core.cbor.decode_reference and encode_reference (see cbor.py).",
    0,
    cbor_native_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__cbor_native(void)
{
    return PyModuleDef_Init(&cbor_native_module);
}
