/* Variable-length strings read without HDF5's global heap code. Such a string is stored as a
 * reference: its length, the file address of a "global heap collection" and the index of an
 * object in it that holds the bytes. HDF5 1.10 trusts all three and the collection's own
 * records: damaged files made it read and write past its buffers, or walk a collection
 * forever. Here HDF5 only hands over the references as stored (an opaque memory type and a
 * conversion registered below that keeps the bytes), whatever the dataset's layout or filters;
 * the collections are then read with pread and walked with every offset and size checked
 * against the collection and the file, each step moving forward. */
#include "dataset_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* HDF5 makes collections of 4 KB, larger only to fit one large object; class names and
 * attributes are far below these bounds. */
#define MAX_COLLECTION_BYTES (64ull << 20)
#define MAX_LOADED_BYTES (256ull << 20)

static const char raw_reference_tag[] = "cleval stored vlen string reference";

/* HDF5 converts a stored variable-length string into the opaque type tagged raw_reference_tag
 * with this function. The two have the same size and HDF5 converts in place, so the stored
 * reference is already where it belongs: nothing to do. Any other pair is refused at INIT. */
static herr_t keep_stored_reference(hid_t src, hid_t dst, H5T_cdata_t *cdata, size_t nelmts,
                                    size_t buf_stride, size_t bkg_stride, void *buf, void *bkg,
                                    hid_t dxpl)
{
    (void)nelmts, (void)buf_stride, (void)bkg_stride, (void)buf, (void)bkg, (void)dxpl;
    if (cdata->command != H5T_CONV_INIT) return 0;
    char *tag = H5Tget_class(dst) == H5T_OPAQUE ? H5Tget_tag(dst) : NULL;
    bool ours = tag && strcmp(tag, raw_reference_tag) == 0;
    H5free_memory(tag);
    if (!ours || H5Tis_variable_str(src) <= 0 || H5Tget_size(src) != H5Tget_size(dst)) return -1;
    cdata->need_bkg = H5T_BKG_NO;
    return 0;
}

static pthread_once_t register_once = PTHREAD_ONCE_INIT;

/* HDF5 matches a soft conversion by type class: variable-length string to opaque. */
static void register_conversion(void)
{
    hid_t vlen = H5Tcopy(H5T_C_S1);
    hid_t opaque = H5Tcreate(H5T_OPAQUE, 16);
    if (vlen >= 0 && opaque >= 0 && H5Tset_size(vlen, H5T_VARIABLE) >= 0 &&
        H5Tset_tag(opaque, raw_reference_tag) >= 0)
        H5Tregister(H5T_PERS_SOFT, "cleval stored reference", vlen, opaque, keep_stored_reference);
    if (vlen >= 0) H5Tclose(vlen);
    if (opaque >= 0) H5Tclose(opaque);
}

/* One object of a collection: its index and where its bytes lie in the collection. */
typedef struct heap_object {
    uint32_t index;
    uint64_t offset, size;
} heap_object;

typedef struct collection {
    uint64_t addr;
    unsigned char *bytes;
    uint64_t size;
    heap_object *objects; /* sorted by index */
    size_t count;
} collection;

typedef struct heap_reader {
    const cleval_dataset *ds;
    const char *what, *name; /* "dataset" or "attribute", and its name: for messages */
    file_format f;
    collection *loaded;
    size_t loaded_count;
    uint64_t loaded_bytes;
} heap_reader;

static cleval_status damaged(const heap_reader *r, uint32_t string, const char *reason)
{
    return cleval_fail(CLEVAL_ERR_INPUT, "%s: %s '%s' is damaged (string %u %s)", r->ds->path,
                       r->what, r->name, string, reason);
}

static uint64_t align8(uint64_t n)
{
    return (n + 7) & ~(uint64_t)7;
}

static int by_index(const void *a, const void *b)
{
    uint32_t x = ((const heap_object *)a)->index, y = ((const heap_object *)b)->index;
    return (x > y) - (x < y);
}

/* Lists the objects of collection `c` as HDF5 lays them out: after the header, records of
 * index (16 bits), reference count (16), reserved (32), size, then the bytes padded to 8; index
 * 0 is free space whose size counts its own record. A tail too short for a record is free
 * space. False when a record overruns the collection, free space does not move forward, or an
 * index repeats. */
static bool list_objects(const heap_reader *r, collection *c, uint64_t header_bytes)
{
    uint64_t record = 8 + r->f.sizeof_size;
    c->objects = malloc((size_t)(c->size / record + 1) * sizeof *c->objects);
    if (!c->objects) return false;
    for (uint64_t at = header_bytes; at + record <= c->size;) {
        const unsigned char *p = c->bytes + at;
        uint32_t index = (uint32_t)dataset_decode_le(p, 2);
        uint64_t size = dataset_decode_le(p + 8, r->f.sizeof_size), room = c->size - at;
        if (index == 0) {
            if (size < record || size > room) return false;
            at += size;
            continue;
        }
        if (size > room - record) return false;
        c->objects[c->count++] = (heap_object){index, at + record, size};
        at += record + align8(size);
    }
    qsort(c->objects, c->count, sizeof *c->objects, by_index);
    for (size_t i = 1; i < c->count; i++)
        if (c->objects[i].index == c->objects[i - 1].index) return false;
    return true;
}

/* Reads and lists the collection at file address `addr`, which string `string` names. */
static cleval_status load_collection(heap_reader *r, uint64_t addr, uint32_t string, collection *c)
{
    unsigned char header[24];
    uint64_t header_bytes = align8(8 + r->f.sizeof_size); /* "GCOL", version, 3 reserved, size */
    uint64_t room = r->f.size > r->f.base ? r->f.size - r->f.base : 0;
    if (addr > room || header_bytes > room - addr)
        return damaged(r, string, "points outside the file");
    uint64_t offset = r->f.base + addr;
    if (!dataset_read_at(r->f.fd, offset, header, (size_t)header_bytes) ||
        memcmp(header, "GCOL", 4) != 0 || header[4] != 1)
        return damaged(r, string, "points where there is no string heap");
    c->addr = addr;
    c->size = dataset_decode_le(header + 8, r->f.sizeof_size);
    if (c->size < header_bytes || c->size > room - addr)
        return damaged(r, string, "points at a string heap that overruns the file");
    if (c->size > MAX_COLLECTION_BYTES || r->loaded_bytes + c->size > MAX_LOADED_BYTES)
        return damaged(r, string, "points at a string heap larger than cleval reads");
    if (!(c->bytes = malloc((size_t)c->size)))
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory reading %s: %s '%s'", r->ds->path,
                           r->what, r->name);
    if (!dataset_read_at(r->f.fd, offset, c->bytes, (size_t)c->size))
        return damaged(r, string, "points at a string heap that cannot be read");
    r->loaded_bytes += c->size;
    if (!list_objects(r, c, header_bytes))
        return damaged(r, string, "points at a string heap whose records are inconsistent");
    return CLEVAL_OK;
}

static void free_collection(collection *c)
{
    free(c->bytes);
    free(c->objects);
}

/* The collection at `addr`, loaded once per read. */
static cleval_status collection_at(heap_reader *r, uint64_t addr, uint32_t string,
                                   const collection **out)
{
    for (size_t i = 0; i < r->loaded_count; i++)
        if (r->loaded[i].addr == addr) {
            *out = &r->loaded[i];
            return CLEVAL_OK;
        }
    collection *grown = realloc(r->loaded, (r->loaded_count + 1) * sizeof *grown);
    if (!grown)
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory reading %s: %s '%s'", r->ds->path,
                           r->what, r->name);
    r->loaded = grown;
    collection *c = &r->loaded[r->loaded_count++];
    *c = (collection){0};
    *out = c;
    return load_collection(r, addr, string, c);
}

/* The string that stored reference `ref` (length, address, index) names, cut at its first NUL
 * or `max_len` bytes, into *out (heap memory). A zero address is HDF5's null string: "". */
static cleval_status look_up(heap_reader *r, const unsigned char *ref, uint32_t string,
                             size_t max_len, char **out)
{
    uint32_t length = (uint32_t)dataset_decode_le(ref, 4);
    uint64_t addr = dataset_decode_le(ref + 4, r->f.sizeof_addr);
    uint32_t index = (uint32_t)dataset_decode_le(ref + 4 + r->f.sizeof_addr, 4);
    const char *bytes = "";
    size_t n = 0;
    if (addr != 0) {
        const collection *c = NULL;
        cleval_status status = collection_at(r, addr, string, &c);
        if (status != CLEVAL_OK) return status;
        heap_object key = {.index = index};
        const heap_object *object = bsearch(&key, c->objects, c->count, sizeof key, by_index);
        if (!object) return damaged(r, string, "is missing from its string heap");
        if (object->size < length) return damaged(r, string, "is longer than its stored bytes");
        bytes = (const char *)c->bytes + object->offset;
        n = strnlen(bytes, length < max_len ? length : max_len);
    }
    if (!(*out = malloc(n + 1)))
        return cleval_fail(CLEVAL_ERR_NOMEM, "out of memory reading %s: %s '%s'", r->ds->path,
                           r->what, r->name);
    memcpy(*out, bytes, n);
    (*out)[n] = '\0';
    return CLEVAL_OK;
}

/* The heap is in the file holding `obj`, which an external link can make another one than
 * ds's. */
static cleval_status open_reader(heap_reader *r, hid_t obj)
{
    if (dataset_file_format(obj, &r->f)) return CLEVAL_OK;
    return cleval_fail(CLEVAL_ERR_INPUT,
                       "%s: cannot read %s '%s' (its file's address format is not supported)",
                       r->ds->path, r->what, r->name);
}

/* The `n` stored references of `obj`, as HDF5 stores them, into *refs (heap memory). */
static cleval_status read_references(heap_reader *r, hid_t obj, bool attribute, uint32_t n,
                                     unsigned char **refs)
{
    size_t ref_bytes = dataset_vlen_reference_bytes(&r->f);
    cleval_status status = CLEVAL_OK;
    pthread_once(&register_once, register_conversion);
    hid_t raw = H5Tcreate(H5T_OPAQUE, ref_bytes);
    *refs = calloc(n ? n : 1, ref_bytes);
    if (raw < 0 || !*refs || H5Tset_tag(raw, raw_reference_tag) < 0) {
        status = cleval_fail(CLEVAL_ERR_NOMEM, "out of memory reading %s: %s '%s'", r->ds->path,
                             r->what, r->name);
    } else {
        herr_t read = attribute ? H5Aread(obj, raw, *refs)
                                : H5Dread(obj, raw, H5S_ALL, H5S_ALL, H5P_DEFAULT, *refs);
        if (read < 0)
            status = cleval_fail(CLEVAL_ERR_INPUT, "%s: cannot read %s '%s'", r->ds->path, r->what,
                                 r->name);
    }
    if (raw >= 0) H5Tclose(raw);
    return status;
}

cleval_status dataset_read_vlen_strings(const cleval_dataset *ds, hid_t obj, bool attribute,
                                        const char *name, uint32_t n, size_t max_len, char **list)
{
    heap_reader r = {.ds = ds, .what = attribute ? "attribute" : "dataset", .name = name};
    unsigned char *refs = NULL;
    cleval_status status = open_reader(&r, obj);
    if (status == CLEVAL_OK) status = read_references(&r, obj, attribute, n, &refs);
    size_t ref_bytes = dataset_vlen_reference_bytes(&r.f);
    for (uint32_t i = 0; i < n && status == CLEVAL_OK; i++)
        status = look_up(&r, refs + (size_t)i * ref_bytes, i, max_len, &list[i]);
    for (size_t i = 0; i < r.loaded_count; i++)
        free_collection(&r.loaded[i]);
    free(r.loaded);
    free(refs);
    return status;
}

size_t dataset_vlen_reference_bytes(const file_format *format)
{
    return 4 + format->sizeof_addr + 4; /* length, heap address, object index */
}
