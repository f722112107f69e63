/* mux_mp4.c -- the MP4 with faststart: H.264 stream-copied (or, with
 * MUXER_TRANSCODE, VP8/VP9/AV1 re-encoded with libx264), audio as AAC:
 * copied when it already is, otherwise decoded and encoded with FFmpeg's
 * native encoder in frames of 1024 samples. */
#include "mux_core.h"

#include <stdio.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/audio_fifo.h>
#include <libavutil/pixdesc.h>

#define X264_MIN_SIDE 16
#define X264_MAX_SIDE 8192

#define AAC_RATE                48000
#define AAC_BITRATE_PER_CHANNEL 96000

typedef struct mp4_ctx {
    mx_src src;
    AVFormatContext *oc;
    AVStream *vst, *ast;         /* output streams; NULL if absent */
    mx_ts vts, ats;              /* per output stream */
    mx_adec adec;                /* decoder of the audio when it is encoded */
    AVCodecContext *aenc;        /* AAC encoder, or NULL when copying */
    AVAudioFifo *fifo;           /* decoded samples waiting for a full frame */
    AVFrame *aframe;             /* one encoder frame */
    AVCodecContext *vdec, *venc; /* video transcoding, or NULL when copying */
    AVFrame *vframe;
    AVPacket *opkt;    /* encoder output */
    int64_t next_apts; /* in 1/AAC_RATE, INT64_MIN until the first frame */
    int64_t last_vpts; /* last pts given to the video encoder */
    mx_output *o;
    char err[200];
} mp4_ctx;

static void add_codec(mx_output *o, const char *name)
{
    size_t n = strlen(o->codecs);
    snprintf(o->codecs + n, sizeof o->codecs - n, "%s%s", n ? "," : "", name);
}

/* Writes an encoder's packet (timestamps in tb, already from zero). */
static int write_encoded(mp4_ctx *c, AVPacket *pkt, AVStream *ost, mx_ts *ts, AVRational tb)
{
    int ret;

    av_packet_rescale_ts(pkt, tb, ost->time_base);
    if (ts->last_dts != INT64_MIN && pkt->dts <= ts->last_dts)
        pkt->dts = ts->last_dts + 1;
    if (pkt->pts < pkt->dts)
        pkt->pts = pkt->dts;
    ts->last_dts = pkt->dts;
    ts->end_us =
        FFMAX(ts->end_us, av_rescale_q(pkt->pts + pkt->duration, ost->time_base, AV_TIME_BASE_Q));
    pkt->stream_index = ost->index;
    if ((ret = av_interleaved_write_frame(c->oc, pkt)) < 0)
        snprintf(c->err, sizeof c->err, "av_interleaved_write_frame (mp4): %s", av_err2str(ret));
    return ret;
}

/* Sends frame (NULL: flush) to enc and writes what comes out. */
static int encode(mp4_ctx *c, AVCodecContext *enc, AVFrame *frame, AVStream *ost, mx_ts *ts)
{
    int ret = avcodec_send_frame(enc, frame);

    if (ret < 0) {
        snprintf(c->err, sizeof c->err, "avcodec_send_frame (%s): %s", enc->codec->name,
                 av_err2str(ret));
        return ret;
    }
    while ((ret = avcodec_receive_packet(enc, c->opkt)) >= 0) {
        /* libx264 leaves it 0; the MP4's edit list would then cut the last frame. */
        if (c->opkt->duration <= 0 && enc->codec_type == AVMEDIA_TYPE_VIDEO &&
            enc->framerate.num > 0)
            c->opkt->duration = av_rescale_q(1, av_inv_q(enc->framerate), enc->time_base);
        ret = write_encoded(c, c->opkt, ost, ts, enc->time_base);
        av_packet_unref(c->opkt);
        if (ret < 0)
            return ret;
    }
    if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF)
        return 0;
    snprintf(c->err, sizeof c->err, "avcodec_receive_packet (%s): %s", enc->codec->name,
             av_err2str(ret));
    return ret;
}

/* Encodes one AAC frame from the FIFO: 1024 samples, fewer only at the end. */
static int encode_aac_frame(mp4_ctx *c, int n)
{
    AVFrame *f = c->aframe;
    int ret;

    av_frame_unref(f);
    f->nb_samples = n;
    f->format = c->aenc->sample_fmt;
    f->sample_rate = c->aenc->sample_rate;
    if ((ret = av_channel_layout_copy(&f->ch_layout, &c->aenc->ch_layout)) < 0 ||
        (ret = av_frame_get_buffer(f, 0)) < 0) {
        snprintf(c->err, sizeof c->err, "av_frame_get_buffer (aac): %s", av_err2str(ret));
        return ret;
    }
    if ((ret = av_audio_fifo_read(c->fifo, (void **)f->data, n)) < n) {
        snprintf(c->err, sizeof c->err, "av_audio_fifo_read: %d of %d samples", ret, n);
        return ret < 0 ? ret : AVERROR_BUG;
    }
    f->pts = c->next_apts;
    c->next_apts += n;
    return encode(c, c->aenc, f, c->ast, &c->ats);
}

static int aac_sink(void *opaque, uint8_t **data, int nb_samples)
{
    mp4_ctx *c = opaque;

    if (c->next_apts == INT64_MIN) { /* the audio may start after the video */
        int64_t start = av_rescale(c->src.start_us, AAC_RATE, AV_TIME_BASE);
        c->next_apts = c->adec.first_pts == INT64_MIN ? 0 : FFMAX(c->adec.first_pts - start, 0);
    }
    if (av_audio_fifo_write(c->fifo, (void **)data, nb_samples) < nb_samples)
        return AVERROR(ENOMEM);
    while (av_audio_fifo_size(c->fifo) >= c->aenc->frame_size)
        if (encode_aac_frame(c, c->aenc->frame_size) < 0)
            return -1;
    return 0;
}

static int open_aac(mp4_ctx *c, const AVStream *ist)
{
    const AVCodec *codec = avcodec_find_encoder_by_name("aac");
    int ret;

    if (mx_adec_open(&c->adec, ist, AV_SAMPLE_FMT_FLTP, AAC_RATE, c->err, sizeof c->err) < 0)
        return -1;
    if (!codec || !(c->aenc = avcodec_alloc_context3(codec))) {
        snprintf(c->err, sizeof c->err, "no aac encoder");
        return -1;
    }
    c->aenc->sample_fmt = AV_SAMPLE_FMT_FLTP;
    c->aenc->sample_rate = AAC_RATE;
    c->aenc->time_base = (AVRational){1, AAC_RATE};
    c->aenc->bit_rate = (int64_t)AAC_BITRATE_PER_CHANNEL * c->adec.channels;
    av_channel_layout_default(&c->aenc->ch_layout, c->adec.channels);
    if (c->oc->oformat->flags & AVFMT_GLOBALHEADER)
        c->aenc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    c->aenc->flags |= AV_CODEC_FLAG_BITEXACT;
    if ((ret = avcodec_open2(c->aenc, codec, NULL)) < 0) {
        snprintf(c->err, sizeof c->err, "avcodec_open2 (aac encoder): %s", av_err2str(ret));
        return -1;
    }
    c->fifo = av_audio_fifo_alloc(AV_SAMPLE_FMT_FLTP, c->adec.channels, c->aenc->frame_size);
    c->aframe = av_frame_alloc();
    if (!c->fifo || !c->aframe || !(c->ast = avformat_new_stream(c->oc, NULL)) ||
        avcodec_parameters_from_context(c->ast->codecpar, c->aenc) < 0) {
        snprintf(c->err, sizeof c->err, "setting up the aac stream: out of memory");
        return -1;
    }
    c->ast->time_base = c->aenc->time_base;
    c->next_apts = INT64_MIN;
    return 0;
}

static int open_vx264(mp4_ctx *c, const AVStream *ist);

static AVStream *copy_stream(mp4_ctx *c, const AVStream *ist)
{
    AVStream *ost = avformat_new_stream(c->oc, NULL);

    if (!ost || avcodec_parameters_copy(ost->codecpar, ist->codecpar) < 0) {
        snprintf(c->err, sizeof c->err, "avformat_new_stream (mp4): out of memory");
        return NULL;
    }
    ost->codecpar->codec_tag = 0;
    ost->time_base = ist->time_base;
    return ost;
}

/* Adds the output streams; false with o set when there is nothing to write. */
static bool add_streams(mp4_ctx *c, const mx_options *opt)
{
    mx_src *s = &c->src;
    mx_output *o = c->o;

    if (s->v >= 0) {
        const AVStream *ist = s->fmt->streams[s->v];
        enum AVCodecID id = ist->codecpar->codec_id;
        if (id == AV_CODEC_ID_H264)
            c->vst = copy_stream(c, ist);
        else if (!opt->transcode_video) {
            mx_set(o, MX_OUT_SKIPPED, "%s video needs MUXER_TRANSCODE (%s)",
                   id == AV_CODEC_ID_VP8 ? "VP8" : avcodec_get_name(id),
                   id == AV_CODEC_ID_VP8 ? "FFmpeg cannot put VP8 in MP4"
                                         : "the MP4 carries H.264 only");
            return false;
        } else if (open_vx264(c, ist) < 0)
            goto fail;
        if (!c->vst)
            goto fail;
        add_codec(o, "h264");
        o->width = c->vst->codecpar->width;
        o->height = c->vst->codecpar->height;
    }
    if (s->a >= 0) {
        const AVStream *ist = s->fmt->streams[s->a];
        if (ist->codecpar->codec_id == AV_CODEC_ID_AAC)
            c->ast = copy_stream(c, ist);
        else if (open_aac(c, ist) < 0)
            goto fail;
        if (!c->ast)
            goto fail;
        add_codec(o, "aac");
        o->sample_rate = c->ast->codecpar->sample_rate;
        o->channels = c->ast->codecpar->ch_layout.nb_channels;
    }
    return true;
fail:
    mx_set(o, MX_OUT_FAILED, "%s", c->err);
    return false;
}

static int transcode_video(mp4_ctx *c, AVPacket *pkt);

/* One input packet: copied, or through a decoder and an encoder. */
static int mp4_packet(mp4_ctx *c, AVPacket *pkt)
{
    mx_src *s = &c->src;
    AVStream *ist = s->fmt->streams[pkt->stream_index];
    bool video = pkt->stream_index == s->v;
    int ret;

    if (video && c->venc)
        return transcode_video(c, pkt);
    if (!video && c->aenc)
        return mx_adec_send(&c->adec, pkt, aac_sink, c, c->err, sizeof c->err);
    mx_ts_fix(video ? &c->vts : &c->ats, pkt, ist, video ? c->vst : c->ast, s->start_us, true);
    pkt->stream_index = video ? c->vst->index : c->ast->index;
    pkt->pos = -1;
    if ((ret = av_interleaved_write_frame(c->oc, pkt)) < 0)
        snprintf(c->err, sizeof c->err, "av_interleaved_write_frame (mp4): %s", av_err2str(ret));
    return ret;
}

static int flush_encoders(mp4_ctx *c)
{
    if (c->venc && (transcode_video(c, NULL) < 0 || encode(c, c->venc, NULL, c->vst, &c->vts) < 0))
        return -1;
    if (!c->aenc)
        return 0;
    if (mx_adec_send(&c->adec, NULL, aac_sink, c, c->err, sizeof c->err) < 0)
        return -1;
    if (av_audio_fifo_size(c->fifo) > 0 && encode_aac_frame(c, av_audio_fifo_size(c->fifo)) < 0)
        return -1;
    return encode(c, c->aenc, NULL, c->ast, &c->ats);
}

static int copy_all(mp4_ctx *c)
{
    AVPacket *pkt = av_packet_alloc();
    int ret;

    if (!pkt) {
        snprintf(c->err, sizeof c->err, "av_packet_alloc: out of memory");
        return -1;
    }
    while ((ret = av_read_frame(c->src.fmt, pkt)) >= 0) {
        if (pkt->stream_index == c->src.v || pkt->stream_index == c->src.a)
            ret = mp4_packet(c, pkt);
        av_packet_unref(pkt);
        if (ret < 0)
            break;
    }
    av_packet_free(&pkt);
    if (ret != AVERROR_EOF) {
        if (!c->err[0])
            snprintf(c->err, sizeof c->err, "av_read_frame: %s", av_err2str(ret));
        return -1;
    }
    return flush_encoders(c);
}

static int open_output(mp4_ctx *c, const char *path, const mx_options *opt)
{
    AVDictionary *opts = NULL;
    int ret;

    if ((ret = avformat_alloc_output_context2(&c->oc, NULL, "mp4", path)) < 0) {
        mx_set(c->o, MX_OUT_FAILED, "avformat_alloc_output_context2 (mp4): %s", av_err2str(ret));
        return -1;
    }
    c->oc->flags |= AVFMT_FLAG_BITEXACT; /* a redone item gives the same file */
    if (!add_streams(c, opt))
        return -1;
    if ((ret = mx_out_pb_open(&c->oc->pb, path, opt->live_out[1])) < 0) {
        mx_set(c->o, MX_OUT_FAILED, "opening the MP4 output %s: %s", path, av_err2str(ret));
        return -1;
    }
    if (opt->moov_reserve > 0) /* the moov goes into space kept at the front */
        av_dict_set_int(&opts, "moov_size", opt->moov_reserve, 0);
    else
        av_dict_set(&opts, "movflags", "+faststart", 0);
    ret = avformat_write_header(c->oc, &opts);
    av_dict_free(&opts);
    if (ret < 0) {
        mx_set(c->o, MX_OUT_FAILED, "avformat_write_header (mp4): %s", av_err2str(ret));
        return -1;
    }
    return 0;
}

/* MUXER_TRANSCODE: the video decoded and re-encoded with libx264. Without
 * libswscale only yuv420p sources (what browsers record) are accepted. */
static int open_vx264(mp4_ctx *c, const AVStream *ist)
{
    const AVCodec *dc = avcodec_find_decoder(ist->codecpar->codec_id);
    const AVCodec *ec = avcodec_find_encoder_by_name("libx264");
    AVDictionary *opts = NULL;
    int ret;

    if (!dc || !ec) {
        snprintf(c->err, sizeof c->err, "transcoding needs a %s decoder and libx264",
                 avcodec_get_name(ist->codecpar->codec_id));
        return -1;
    }
    if (ist->codecpar->format != AV_PIX_FMT_YUV420P) {
        snprintf(c->err, sizeof c->err, "transcoding %s video: pixel format %s is not yuv420p",
                 dc->name, av_get_pix_fmt_name(ist->codecpar->format));
        return -1;
    }
    /* checked here: FFmpeg 5.1 leaks libx264's parameters when the encoder
     * refuses to open (found by fuzz_mux_input) */
    int w = ist->codecpar->width, h = ist->codecpar->height;
    if (w < X264_MIN_SIDE || h < X264_MIN_SIDE || w > X264_MAX_SIDE || h > X264_MAX_SIDE ||
        w % 2 != 0 || h % 2 != 0) {
        snprintf(c->err, sizeof c->err,
                 "transcoding %s video: %dx%d is not an even size from %dx%d to %dx%d", dc->name, w,
                 h, X264_MIN_SIDE, X264_MIN_SIDE, X264_MAX_SIDE, X264_MAX_SIDE);
        return -1;
    }
    c->vdec = avcodec_alloc_context3(dc);
    c->venc = avcodec_alloc_context3(ec);
    c->vframe = av_frame_alloc();
    if (!c->vdec || !c->venc || !c->vframe) {
        snprintf(c->err, sizeof c->err, "avcodec_alloc_context3: out of memory");
        return -1;
    }
    if ((ret = avcodec_parameters_to_context(c->vdec, ist->codecpar)) < 0 ||
        (ret = avcodec_open2(c->vdec, dc, NULL)) < 0) {
        snprintf(c->err, sizeof c->err, "avcodec_open2 (%s decoder): %s", dc->name,
                 av_err2str(ret));
        return -1;
    }
    c->vdec->pkt_timebase = ist->time_base;
    c->venc->width = ist->codecpar->width;
    c->venc->height = ist->codecpar->height;
    c->venc->sample_aspect_ratio = ist->codecpar->sample_aspect_ratio;
    c->venc->pix_fmt = AV_PIX_FMT_YUV420P;
    c->venc->time_base = ist->time_base;
    c->venc->framerate = av_guess_frame_rate(c->src.fmt, (AVStream *)ist, NULL);
    if (c->oc->oformat->flags & AVFMT_GLOBALHEADER)
        c->venc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    av_dict_set(&opts, "preset", "veryfast", 0);
    av_dict_set(&opts, "crf", "18", 0);
    ret = avcodec_open2(c->venc, ec, &opts);
    av_dict_free(&opts);
    if (ret < 0) {
        snprintf(c->err, sizeof c->err, "avcodec_open2 (libx264): %s", av_err2str(ret));
        return -1;
    }
    if (!(c->vst = avformat_new_stream(c->oc, NULL)) ||
        avcodec_parameters_from_context(c->vst->codecpar, c->venc) < 0) {
        snprintf(c->err, sizeof c->err, "avformat_new_stream (mp4): out of memory");
        return -1;
    }
    c->vst->time_base = c->venc->time_base;
    return 0;
}

/* Decodes pkt (NULL: drain) and encodes the frames, timestamps from zero. */
static int transcode_video(mp4_ctx *c, AVPacket *pkt)
{
    AVStream *ist = c->src.fmt->streams[c->src.v];
    int64_t off = av_rescale_q(c->src.start_us, AV_TIME_BASE_Q, ist->time_base);
    int ret = avcodec_send_packet(c->vdec, pkt);

    if (ret == AVERROR_INVALIDDATA)
        return 0;
    if (ret < 0) {
        snprintf(c->err, sizeof c->err, "avcodec_send_packet (%s): %s", c->vdec->codec->name,
                 av_err2str(ret));
        return ret;
    }
    while ((ret = avcodec_receive_frame(c->vdec, c->vframe)) >= 0) {
        AVFrame *f = c->vframe;
        int64_t pts = f->best_effort_timestamp;
        if (f->width != c->venc->width || f->height != c->venc->height) {
            snprintf(c->err, sizeof c->err, "transcoding: the video changes size (%dx%d -> %dx%d)",
                     c->venc->width, c->venc->height, f->width, f->height);
            av_frame_unref(f);
            return -1;
        }
        if (pts == AV_NOPTS_VALUE)
            pts = c->last_vpts == INT64_MIN ? 0 : c->last_vpts + 1;
        else
            pts -= off;
        if (c->last_vpts != INT64_MIN && pts <= c->last_vpts)
            pts = c->last_vpts + 1;
        f->pts = c->last_vpts = pts;
        f->pict_type = AV_PICTURE_TYPE_NONE;
        ret = encode(c, c->venc, f, c->vst, &c->vts);
        av_frame_unref(f);
        if (ret < 0)
            return ret;
    }
    if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF)
        return 0;
    snprintf(c->err, sizeof c->err, "avcodec_receive_frame (%s): %s", c->vdec->codec->name,
             av_err2str(ret));
    return ret;
}

void mx_write_mp4(const mx_input *in, const char *path, const mx_options *opt, mx_output *o)
{
    mp4_ctx c = {.o = o, .vts = {INT64_MIN, 0}, .ats = {INT64_MIN, 0}, .last_vpts = INT64_MIN};
    int ret;

    if (mx_src_open(&c.src, in, c.err, sizeof c.err) < 0) {
        mx_set(o, MX_OUT_FAILED, "%s", c.err);
        return;
    }
    if (!(c.opkt = av_packet_alloc())) {
        mx_set(o, MX_OUT_FAILED, "av_packet_alloc: out of memory");
        goto out;
    }
    if (open_output(&c, path, opt) < 0)
        goto out;
    if (copy_all(&c) < 0) {
        mx_set(o, MX_OUT_FAILED, "%s", c.err);
        goto out;
    }
    /* With faststart the trailer rewrites the file with the moov in front;
     * with moov_size it writes the moov into the reserved space (and fails
     * when it does not fit). */
    if ((ret = av_write_trailer(c.oc)) < 0) {
        mx_set(o, MX_OUT_FAILED, "av_write_trailer (mp4): %s", av_err2str(ret));
        goto out;
    }
    o->duration_us = FFMAX(c.vts.end_us, c.ats.end_us);
    mx_set(o, MX_OUT_DONE, "%s", "");
out:
    if (c.oc)
        mx_out_pb_close(&c.oc->pb, opt->live_out[1]);
    avformat_free_context(c.oc);
    avcodec_free_context(&c.aenc);
    avcodec_free_context(&c.venc);
    avcodec_free_context(&c.vdec);
    av_audio_fifo_free(c.fifo);
    av_frame_free(&c.aframe);
    av_frame_free(&c.vframe);
    av_packet_free(&c.opkt);
    mx_adec_close(&c.adec);
    mx_src_close(&c.src);
}
