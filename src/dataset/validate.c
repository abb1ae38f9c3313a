/* Checks of a dataset's raw storage against the file and the dataset's declared shape, made
 * before HDF5 reads it. HDF5 1.10 trusts the layout message of a damaged file: contiguous
 * storage declared smaller than the shape makes it copy past the end of its own buffers (read
 * back as pixels), an address past the end of the file reads what is not there. Such a file is
 * refused instead, naming the file and the dataset. */
#include "dataset_internal.h"

#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "cleval/status.h"

/* HDF5 stores a chunk's size in 32 bits. */
#define MAX_CHUNK_BYTES 0xffffffffull
/* See check_chunks(). */
#define MAX_CHECKED_CHUNKS 1024

int dataset_file_descriptor(hid_t obj)
{
    hid_t file = H5Iget_file_id(obj);
    int *fd = NULL; /* the default (sec2) driver's handle is its file descriptor */
    herr_t got = file >= 0 ? H5Fget_vfd_handle(file, H5P_DEFAULT, (void **)&fd) : -1;
    if (file >= 0) H5Fclose(file); /* `obj` keeps the file open */
    return got >= 0 && fd ? *fd : -1;
}

bool dataset_file_format(hid_t obj, file_format *format)
{
    hid_t file = H5Iget_file_id(obj);
    hid_t fcpl = file >= 0 ? H5Fget_create_plist(file) : H5I_INVALID_HID;
    if (file >= 0) H5Fclose(file); /* `obj` keeps the file open */
    size_t sizeof_addr = 0, sizeof_size = 0;
    hsize_t user_block = 0;
    bool ok = fcpl >= 0 && H5Pget_sizes(fcpl, &sizeof_addr, &sizeof_size) >= 0 &&
              H5Pget_userblock(fcpl, &user_block) >= 0;
    if (fcpl >= 0) H5Pclose(fcpl);
    format->fd = dataset_file_descriptor(obj);
    format->base = user_block;
    format->sizeof_addr = (unsigned)sizeof_addr;
    format->sizeof_size = (unsigned)sizeof_size;
    return ok && sizeof_addr >= 2 && sizeof_addr <= 8 && sizeof_size >= 2 && sizeof_size <= 8 &&
           format->fd >= 0 && dataset_file_size(obj, &format->size);
}

bool dataset_file_size(hid_t obj, uint64_t *size)
{
    int fd = dataset_file_descriptor(obj);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) return false;
    *size = (uint64_t)st.st_size;
    return true;
}

uint64_t dataset_decode_le(const unsigned char *p, unsigned bytes)
{
    uint64_t value = 0;
    for (unsigned i = bytes; i-- > 0;)
        value = value << 8 | p[i];
    return value;
}

bool dataset_read_at(int fd, uint64_t offset, void *dest, size_t bytes)
{
    for (size_t done = 0; done < bytes;) {
        ssize_t got = pread(fd, (char *)dest + done, bytes - done, (off_t)(offset + done));
        if (got <= 0) return false;
        done += (size_t)got;
    }
    return true;
}

static cleval_status damaged(const cleval_dataset *ds, const char *name, const char *reason)
{
    return cleval_fail(CLEVAL_ERR_INPUT, "%s: dataset '%s' is damaged (%s)", ds->path, name,
                       reason);
}

/* Whether [offset, offset + bytes) lies inside the file holding `dset`; an unknown file size
 * passes (HDF5 then reads through its own end-of-file checks). */
static bool inside_file(hid_t dset, uint64_t offset, uint64_t bytes)
{
    uint64_t file_size;
    if (!dataset_file_size(dset, &file_size)) return true;
    return offset <= file_size && bytes <= file_size - offset;
}

/* The product of `dims` times `element_bytes` in *bytes; false when it overflows 64 bits. */
static bool product_bytes(int rank, const hsize_t *dims, size_t element_bytes, uint64_t *bytes)
{
    uint64_t total = element_bytes;
    for (int d = 0; d < rank; d++) {
        if (dims[d] && total > UINT64_MAX / dims[d]) return false;
        total *= dims[d];
    }
    *bytes = total;
    return true;
}

/* The bytes dataset `dset` declares (elements times `element_bytes`); false when the shape
 * cannot be read or its size overflows. */
static bool declared_bytes(hid_t dset, size_t element_bytes, int *rank, hsize_t *dims,
                           uint64_t *bytes)
{
    hid_t space = H5Dget_space(dset);
    if (space < 0) return false;
    bool ok = false;
    if (H5Sget_simple_extent_type(space) == H5S_NULL) {
        *rank = 0;
        *bytes = 0;
        ok = true;
    } else {
        *rank = H5Sget_simple_extent_ndims(space);
        ok = *rank >= 0 && H5Sget_simple_extent_dims(space, dims, NULL) == *rank &&
             product_bytes(*rank, dims, element_bytes, bytes);
    }
    H5Sclose(space);
    return ok;
}

/* Contiguous storage must hold exactly the declared bytes, all inside the file. */
static cleval_status check_contiguous(const cleval_dataset *ds, hid_t dset, hid_t dcpl,
                                      const char *name, uint64_t declared)
{
    if (H5Pget_external_count(dcpl) > 0) return CLEVAL_OK; /* in other files: linked_files.c */
    haddr_t offset = H5Dget_offset(dset);
    if (offset == HADDR_UNDEF) return CLEVAL_OK; /* never written: HDF5 reads the fill value */
    uint64_t stored = H5Dget_storage_size(dset);
    char reason[160];
    if (stored != declared) {
        snprintf(reason, sizeof reason, "its storage holds %llu bytes where its shape needs %llu",
                 (unsigned long long)stored, (unsigned long long)declared);
        return damaged(ds, name, reason);
    }
    if (!inside_file(dset, offset, stored))
        return damaged(ds, name, "its storage lies past the end of the file");
    return CLEVAL_OK;
}

/* Compact storage (inside the dataset's header) must hold exactly the declared bytes. */
static cleval_status check_compact(const cleval_dataset *ds, hid_t dset, const char *name,
                                   uint64_t declared)
{
    uint64_t stored = H5Dget_storage_size(dset);
    if (stored == declared) return CLEVAL_OK;
    char reason[160];
    snprintf(reason, sizeof reason, "its storage holds %llu bytes where its shape needs %llu",
             (unsigned long long)stored, (unsigned long long)declared);
    return damaged(ds, name, reason);
}

/* Chunks must have the dataset's rank, no zero dimension, and fit HDF5's 4 GB chunk limit. */
static cleval_status check_chunk_shape(const cleval_dataset *ds, hid_t dcpl, const char *name,
                                       int rank, size_t element_bytes)
{
    hsize_t chunk[H5S_MAX_RANK];
    int chunk_rank = H5Pget_chunk(dcpl, H5S_MAX_RANK, chunk);
    uint64_t bytes = 0;
    bool sane = chunk_rank == rank && product_bytes(rank, chunk, element_bytes, &bytes) &&
                bytes > 0 && bytes <= MAX_CHUNK_BYTES;
    return sane ? CLEVAL_OK : damaged(ds, name, "its chunk shape is impossible");
}

/* Checks the stored chunk at chunk coordinates `at` (in chunks): inside the file and, when the
 * dataset has no filters, exactly `chunk_bytes` large (HDF5 reads that many from its
 * address). */
static cleval_status check_one_chunk(const cleval_dataset *ds, hid_t dset, const char *name,
                                     int rank, const hsize_t *chunk, const hsize_t *at,
                                     bool filtered, uint64_t chunk_bytes)
{
    hsize_t offset[H5S_MAX_RANK];
    for (int d = 0; d < rank; d++)
        offset[d] = at[d] * chunk[d];
    unsigned mask = 0;
    haddr_t addr = HADDR_UNDEF;
    hsize_t size = 0;
    if (H5Dget_chunk_info_by_coord(dset, offset, &mask, &addr, &size) < 0)
        return damaged(ds, name, "its chunk index cannot be read");
    if (addr == HADDR_UNDEF) return CLEVAL_OK; /* never written: HDF5 reads the fill value */
    if (!inside_file(dset, addr, size))
        return damaged(ds, name, "a chunk of its storage lies past the end of the file");
    if (!filtered && size != chunk_bytes)
        return damaged(ds, name, "a chunk of its storage has the wrong size");
    return CLEVAL_OK;
}

/* Advances chunk coordinates `at` over the box [first, last] (in chunks), last dimension
 * fastest; false after the last one. */
static bool next_chunk(int rank, const hsize_t *first, const hsize_t *last, hsize_t *at)
{
    for (int d = rank - 1; d >= 0; d--) {
        if (at[d] < last[d]) {
            at[d]++;
            return true;
        }
        at[d] = first[d];
    }
    return false;
}

/* Checks every stored chunk of a dataset of shape `dims` stored in chunks of shape `chunk`
 * (already checked sane), when there are at most MAX_CHECKED_CHUNKS. HDF5 1.10 finds one
 * chunk's address only by walking its whole index, so checking n chunks costs n * n steps;
 * beyond that, HDF5's own checks of each read against the end of its file remain. */
static cleval_status check_chunks(const cleval_dataset *ds, hid_t dset, hid_t dcpl,
                                  const char *name, int rank, const hsize_t *dims,
                                  const hsize_t *chunk, size_t element_bytes)
{
    uint64_t chunk_bytes = 0, chunks = 1;
    hsize_t first[H5S_MAX_RANK] = {0}, last[H5S_MAX_RANK], at[H5S_MAX_RANK] = {0};
    product_bytes(rank, chunk, element_bytes, &chunk_bytes);
    for (int d = 0; d < rank; d++) {
        if (dims[d] == 0) return CLEVAL_OK;
        last[d] = (dims[d] - 1) / chunk[d];
        bool beyond = chunks > MAX_CHECKED_CHUNKS || last[d] >= MAX_CHECKED_CHUNKS;
        chunks = beyond ? MAX_CHECKED_CHUNKS + 1 : chunks * (last[d] + 1);
    }
    if (chunks > MAX_CHECKED_CHUNKS) return CLEVAL_OK;
    bool filtered = H5Pget_nfilters(dcpl) > 0;
    cleval_status status = CLEVAL_OK;
    do
        status = check_one_chunk(ds, dset, name, rank, chunk, at, filtered, chunk_bytes);
    while (status == CLEVAL_OK && next_chunk(rank, first, last, at));
    return status;
}

cleval_status dataset_check_storage(const cleval_dataset *ds, hid_t dset, const char *name,
                                    size_t element_bytes)
{
    int rank = 0;
    hsize_t dims[H5S_MAX_RANK];
    uint64_t declared = 0;
    if (!declared_bytes(dset, element_bytes, &rank, dims, &declared))
        return damaged(ds, name, "its shape is impossible");
    hid_t dcpl = H5Dget_create_plist(dset);
    if (dcpl < 0) return damaged(ds, name, "its storage layout cannot be read");
    cleval_status status = CLEVAL_OK;
    switch (H5Pget_layout(dcpl)) {
    case H5D_CONTIGUOUS: status = check_contiguous(ds, dset, dcpl, name, declared); break;
    case H5D_COMPACT: status = check_compact(ds, dset, name, declared); break;
    case H5D_CHUNKED:
        if ((status = check_chunk_shape(ds, dcpl, name, rank, element_bytes)) == CLEVAL_OK) {
            hsize_t chunk[H5S_MAX_RANK];
            H5Pget_chunk(dcpl, H5S_MAX_RANK, chunk);
            status = check_chunks(ds, dset, dcpl, name, rank, dims, chunk, element_bytes);
        }
        break;
    case H5D_VIRTUAL: break; /* read from source datasets in files linked_files.c checks */
    default: status = damaged(ds, name, "its storage layout is unknown"); break;
    }
    H5Pclose(dcpl);
    return status;
}
