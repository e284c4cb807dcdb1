/* Crop-only JPEG decoding for the pretraining input pipeline (mae.fast_transforms via remap.jpeg_crop).
 *
 * RandomResizedCrop keeps 20-100 % of an image, yet a plain decoder turns every pixel into RGB. Here
 * libjpeg-turbo decodes only the crop: the rows above it are skipped (jpeg_skip_scanlines: entropy
 * decoding only), the rows below it are never read, and each row is converted only over the crop's
 * columns (jpeg_crop_scanline, iMCU-aligned). One column of margin on either side keeps chroma
 * upsampling at the crop's edges the same as in a full decode, so the pixels are those of the full
 * image cut to the box. Compiled into remap_ops.so when the host has libjpeg-turbo 2.0 or newer
 * (remap/Makefile, WITH_JPEG); plain C with setjmp error handling, no torch. Reentrant: every call
 * has its own decoder state, so loader threads and processes may call it at once.
 */
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#if !defined(LIBJPEG_TURBO_VERSION_NUMBER) || LIBJPEG_TURBO_VERSION_NUMBER < 2000000
#error "crop decoding needs libjpeg-turbo 2.0 or newer (jpeg_crop_scanline, jpeg_skip_scanlines)"
#endif

#define MSG_LEN 200
#define MIN_COLS 32 /* the narrowest region decoded: two iMCUs of 4:2:0 */

struct crop_error {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char *msg; /* MSG_LEN bytes, or NULL */
};

static void fail(j_common_ptr cinfo) {
    struct crop_error *err = (struct crop_error *)cinfo->err;
    if (err->msg) {
        char text[JMSG_LENGTH_MAX];
        (*cinfo->err->format_message)(cinfo, text);
        snprintf(err->msg, MSG_LEN, "%s", text);
    }
    longjmp(err->jump, 1);
}

/* Warnings (corrupt data that libjpeg would decode around) are errors here, as in simplejpeg's strict
 * mode: the caller then takes its ordinary decoder, which reports the file. */
static void on_message(j_common_ptr cinfo, int level) {
    if (level < 0)
        fail(cinfo);
}

static void set_msg(char *msg, const char *text) {
    if (msg)
        snprintf(msg, MSG_LEN, "%s", text);
}

/* The libjpeg-turbo version this was compiled against (e.g. 2001005 for 2.1.5). */
int remap_jpeg_crop_version(void) { return LIBJPEG_TURBO_VERSION_NUMBER; }

/* Decode rows [i, i + h) and columns [j, j + w) of the JPEG `data` (`size` bytes) as RGB into `out`
 * (h * w * 3 bytes, row-major). Returns 0, or -1 with a sentence in `msg` (MSG_LEN bytes, may be NULL)
 * for a box outside the image, a colour space libjpeg cannot turn into RGB (CMYK) or corrupt data. */
int remap_jpeg_crop(const unsigned char *data, unsigned long size, int i, int j, int h, int w,
                    unsigned char *out, char *msg) {
    struct jpeg_decompress_struct cinfo;
    struct crop_error err;
    unsigned char *volatile row = NULL;

    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = fail;
    err.pub.emit_message = on_message;
    err.msg = msg;
    jpeg_create_decompress(&cinfo);
    if (setjmp(err.jump)) {
        free(row);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    jpeg_mem_src(&cinfo, data, size);
    jpeg_read_header(&cinfo, TRUE);
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    const int width = (int)cinfo.output_width, height = (int)cinfo.output_height;
    if (i < 0 || j < 0 || h <= 0 || w <= 0 || i > height - h || j > width - w) {
        set_msg(msg, "the crop box is not inside the image");
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    int left = j > 0 ? j - 1 : 0, right = j + w < width ? j + w + 1 : width;
    if (right - left < MIN_COLS) { /* libjpeg-turbo's upsampling of a region a few pixels wide differs */
        left = right - MIN_COLS > 0 ? right - MIN_COLS : 0;
        right = left + MIN_COLS < width ? left + MIN_COLS : width;
    }
    JDIMENSION x0 = (JDIMENSION)left, cols = (JDIMENSION)(right - left);
    jpeg_crop_scanline(&cinfo, &x0, &cols); /* widens to iMCU boundaries: x0 <= left */
    row = malloc((size_t)cols * 3);
    if (row == NULL) {
        set_msg(msg, "out of memory");
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    if (i > 0)
        jpeg_skip_scanlines(&cinfo, (JDIMENSION)i);
    const size_t offset = (size_t)(j - (int)x0) * 3, stride = (size_t)w * 3;
    for (int y = 0; y < h; y++) {
        JSAMPROW r = row;
        if (jpeg_read_scanlines(&cinfo, &r, 1) != 1) {
            set_msg(msg, "the JPEG data ends inside the crop");
            longjmp(err.jump, 1);
        }
        memcpy(out + (size_t)y * stride, row + offset, stride);
    }
    free(row);
    jpeg_abort_decompress(&cinfo); /* the rows below the crop are never decoded */
    jpeg_destroy_decompress(&cinfo);
    return 0;
}
