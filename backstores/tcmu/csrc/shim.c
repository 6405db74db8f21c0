/*
 * The variadic half of the tcmu-runner 1.5.4 host interface for ustgt.
 *
 * Handlers log through five printf-style functions, tcmu_{crit,err,warn,info,dbg}_message.
 * Stable Rust cannot define C-variadic functions, so they live here: each formats its message
 * with the C library's vsnprintf (which knows %m, %zu, %F...) and hands the text to the Rust
 * sink ustgt_tcmu_log_sink.
 *
 * The table at the end takes the address of every host function written in Rust. This object
 * is linked whole-archive, so the table makes the linker keep those functions in every
 * executable that links the store, where the dynamic symbol list then exports them.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>

/* Implemented in Rust (src/host/log.rs). Never unwinds. */
extern void ustgt_tcmu_log_sink(int level, void *dev, const char *func, int line,
                                const char *msg);

/* Runner log levels. */
enum { LVL_CRIT = 2, LVL_ERR = 3, LVL_WARN = 4, LVL_INFO = 6, LVL_DBG = 7 };

static void forward(int level, void *dev, const char *func, int line, const char *fmt,
                    va_list ap)
{
    char small[512];
    va_list again;
    int saved = errno;
    int n;

    if (fmt == NULL) {
        ustgt_tcmu_log_sink(level, dev, func, line, "(null format)");
        return;
    }
    va_copy(again, ap);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    if (n < 0) {
        ustgt_tcmu_log_sink(level, dev, func, line, fmt);
    } else if ((size_t)n < sizeof(small)) {
        ustgt_tcmu_log_sink(level, dev, func, line, small);
    } else {
        char *big = malloc((size_t)n + 1);
        if (big != NULL) {
            errno = saved; /* %m must see the caller's errno */
            vsnprintf(big, (size_t)n + 1, fmt, again);
            ustgt_tcmu_log_sink(level, dev, func, line, big);
            free(big);
        } else {
            ustgt_tcmu_log_sink(level, dev, func, line, small);
        }
    }
    va_end(again);
    errno = saved;
}

#define DEFINE_LOGGER(name, level)                                                    \
    void name(void *dev, const char *func, int line, const char *fmt, ...)            \
    {                                                                                 \
        va_list ap;                                                                   \
        va_start(ap, fmt);                                                            \
        forward(level, dev, func, line, fmt, ap);                                     \
        va_end(ap);                                                                   \
    }

DEFINE_LOGGER(tcmu_crit_message, LVL_CRIT)
DEFINE_LOGGER(tcmu_err_message, LVL_ERR)
DEFINE_LOGGER(tcmu_warn_message, LVL_WARN)
DEFINE_LOGGER(tcmu_info_message, LVL_INFO)
DEFINE_LOGGER(tcmu_dbg_message, LVL_DBG)

/* The host functions written in Rust (their real prototypes do not matter here). */
extern void tcmu_cdb_get_lba(void);
extern void tcmu_cdb_get_xfer_length(void);
extern void tcmu_cfgfs_dev_get_attr_int(void);
extern void tcmu_cfgfs_dev_get_info_u64(void);
extern void tcmu_cfgfs_dev_get_wwn(void);
extern void tcmu_dev_get_block_size(void);
extern void tcmu_dev_get_cfgstring(void);
extern void tcmu_dev_get_max_unmap_len(void);
extern void tcmu_dev_get_max_xfer_len(void);
extern void tcmu_dev_get_num_lbas(void);
extern void tcmu_dev_get_opt_unmap_gran(void);
extern void tcmu_dev_get_private(void);
extern void tcmu_dev_get_solid_state_media(void);
extern void tcmu_dev_get_unmap_enabled(void);
extern void tcmu_dev_get_unmap_gran_align(void);
extern void tcmu_dev_get_write_cache_enabled(void);
extern void tcmu_dev_set_block_size(void);
extern void tcmu_dev_set_max_unmap_len(void);
extern void tcmu_dev_set_num_lbas(void);
extern void tcmu_dev_set_opt_unmap_gran(void);
extern void tcmu_dev_set_opt_xcopy_rw_len(void);
extern void tcmu_dev_set_solid_state_media(void);
extern void tcmu_dev_set_unmap_gran_align(void);
extern void tcmu_dev_set_write_cache_enabled(void);
extern void tcmu_iovec_compare(void);
extern void tcmu_iovec_length(void);
extern void tcmu_iovec_seek(void);
extern void tcmu_memcpy_from_iovec(void);
extern void tcmu_memcpy_into_iovec(void);
extern void tcmu_notify_cmd_timed_out(void);
extern void tcmu_notify_lock_lost(void);
extern void tcmu_sense_set_data(void);
extern void tcmu_sense_set_info(void);
extern void tcmu_sense_set_key_specific_info(void);
extern void tcmu_set_thread_name(void);
extern void tcmur_cmd_complete(void);
extern void tcmur_dev_get_private(void);
extern void tcmur_dev_set_private(void);
extern void tcmur_register_handler(void);

__attribute__((used)) const void *const ustgt_tcmu_rust_exports[] = {
    (const void *)&tcmu_cdb_get_lba,
    (const void *)&tcmu_cdb_get_xfer_length,
    (const void *)&tcmu_cfgfs_dev_get_attr_int,
    (const void *)&tcmu_cfgfs_dev_get_info_u64,
    (const void *)&tcmu_cfgfs_dev_get_wwn,
    (const void *)&tcmu_dev_get_block_size,
    (const void *)&tcmu_dev_get_cfgstring,
    (const void *)&tcmu_dev_get_max_unmap_len,
    (const void *)&tcmu_dev_get_max_xfer_len,
    (const void *)&tcmu_dev_get_num_lbas,
    (const void *)&tcmu_dev_get_opt_unmap_gran,
    (const void *)&tcmu_dev_get_private,
    (const void *)&tcmu_dev_get_solid_state_media,
    (const void *)&tcmu_dev_get_unmap_enabled,
    (const void *)&tcmu_dev_get_unmap_gran_align,
    (const void *)&tcmu_dev_get_write_cache_enabled,
    (const void *)&tcmu_dev_set_block_size,
    (const void *)&tcmu_dev_set_max_unmap_len,
    (const void *)&tcmu_dev_set_num_lbas,
    (const void *)&tcmu_dev_set_opt_unmap_gran,
    (const void *)&tcmu_dev_set_opt_xcopy_rw_len,
    (const void *)&tcmu_dev_set_solid_state_media,
    (const void *)&tcmu_dev_set_unmap_gran_align,
    (const void *)&tcmu_dev_set_write_cache_enabled,
    (const void *)&tcmu_iovec_compare,
    (const void *)&tcmu_iovec_length,
    (const void *)&tcmu_iovec_seek,
    (const void *)&tcmu_memcpy_from_iovec,
    (const void *)&tcmu_memcpy_into_iovec,
    (const void *)&tcmu_notify_cmd_timed_out,
    (const void *)&tcmu_notify_lock_lost,
    (const void *)&tcmu_sense_set_data,
    (const void *)&tcmu_sense_set_info,
    (const void *)&tcmu_sense_set_key_specific_info,
    (const void *)&tcmu_set_thread_name,
    (const void *)&tcmur_cmd_complete,
    (const void *)&tcmur_dev_get_private,
    (const void *)&tcmur_dev_set_private,
    (const void *)&tcmur_register_handler
};
