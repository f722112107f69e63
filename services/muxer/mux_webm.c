/* mux_webm.c -- the seekable WebM: stream copy of VP8/VP9/AV1 and
 * Opus/Vorbis into a file the Matroska muxer can seek back in, so that it
 * writes the duration and the cues MediaRecorder could not. */
#include "mux_core.h"

#include <stdio.h>
#include <string.h>

#include <libavformat/avformat.h>

static bool webm_video(enum AVCodecID id)
{
    return id == AV_CODEC_ID_VP8 || id == AV_CODEC_ID_VP9 || id == AV_CODEC_ID_AV1;
}

static bool webm_audio(enum AVCodecID id)
{
    return id == AV_CODEC_ID_OPUS || id == AV_CODEC_ID_VORBIS;
}

/* Adds a stream copying ist; records it in o. */
static AVStream *copy_stream(AVFormatContext *oc, const AVStream *ist, mx_output *o)
{
    AVStream *ost = avformat_new_stream(oc, NULL);
    const AVCodecParameters *par = ist->codecpar;
    size_t n = strlen(o->codecs);

    if (!ost || avcodec_parameters_copy(ost->codecpar, par) < 0)
        return NULL;
    ost->codecpar->codec_tag = 0;
    ost->time_base = (AVRational){1, 1000};
    snprintf(o->codecs + n, sizeof o->codecs - n, "%s%s", n ? "," : "",
             avcodec_get_name(par->codec_id));
    if (par->codec_type == AVMEDIA_TYPE_VIDEO) {
        o->width = par->width;
        o->height = par->height;
    } else {
        o->sample_rate = par->sample_rate;
        o->channels = par->ch_layout.nb_channels;
    }
    return ost;
}

/* The source's codecs, or a reason (in o) why they cannot go into WebM. */
static bool webm_possible(const mx_src *s, mx_output *o)
{
    enum AVCodecID v = s->v >= 0 ? s->fmt->streams[s->v]->codecpar->codec_id : AV_CODEC_ID_NONE;
    enum AVCodecID a = s->a >= 0 ? s->fmt->streams[s->a]->codecpar->codec_id : AV_CODEC_ID_NONE;

    if (s->v >= 0 && !webm_video(v)) {
        mx_set(o, MX_OUT_SKIPPED, "%s video cannot be stream-copied into WebM",
               avcodec_get_name(v));
        return false;
    }
    if (s->a >= 0 && !webm_audio(a)) {
        mx_set(o, MX_OUT_SKIPPED, "%s audio cannot be stream-copied into WebM",
               avcodec_get_name(a));
        return false;
    }
    return true;
}

static int copy_packets(mx_src *s, AVFormatContext *oc, AVStream *map[2], mx_output *o)
{
    mx_ts ts[2] = {{INT64_MIN, 0}, {INT64_MIN, 0}};
    AVPacket *pkt = av_packet_alloc();
    int ret = 0;

    if (!pkt)
        return AVERROR(ENOMEM);
    while ((ret = av_read_frame(s->fmt, pkt)) >= 0) {
        int i = pkt->stream_index == s->v ? 0 : pkt->stream_index == s->a ? 1 : -1;
        if (i < 0) {
            av_packet_unref(pkt);
            continue;
        }
        mx_ts_fix(&ts[i], pkt, s->fmt->streams[pkt->stream_index], map[i], s->start_us, true);
        if (pkt->dts < 0) { /* Opus pre-skip: the timestamps start at zero */
            pkt->dts = pkt->pts = 0;
            ts[i].last_dts = 0;
        }
        pkt->stream_index = map[i]->index;
        pkt->pos = -1;
        if ((ret = av_interleaved_write_frame(oc, pkt)) < 0) {
            mx_set(o, MX_OUT_FAILED, "av_interleaved_write_frame (webm): %s", av_err2str(ret));
            break;
        }
    }
    av_packet_free(&pkt);
    o->duration_us = FFMAX(ts[0].end_us, ts[1].end_us);
    if (ret == AVERROR_EOF)
        return 0;
    if (o->state != MX_OUT_FAILED)
        mx_set(o, MX_OUT_FAILED, "av_read_frame: %s", av_err2str(ret));
    return ret;
}

void mx_write_webm(const mx_input *in, const char *path, const mx_options *opt, mx_output *o)
{
    AVFormatContext *oc = NULL;
    AVStream *map[2] = {NULL, NULL};
    char err[256];
    mx_src s;
    int ret;

    if (mx_src_open(&s, in, err, sizeof err) < 0) {
        mx_set(o, MX_OUT_FAILED, "%s", err);
        return;
    }
    if (!webm_possible(&s, o))
        goto out;
    if ((ret = avformat_alloc_output_context2(&oc, NULL, "webm", path)) < 0) {
        mx_set(o, MX_OUT_FAILED, "avformat_alloc_output_context2 (webm): %s", av_err2str(ret));
        goto out;
    }
    oc->flags |= AVFMT_FLAG_BITEXACT; /* no random UIDs: a redone item gives the same file */
    if ((s.v >= 0 && !(map[0] = copy_stream(oc, s.fmt->streams[s.v], o))) ||
        (s.a >= 0 && !(map[1] = copy_stream(oc, s.fmt->streams[s.a], o)))) {
        mx_set(o, MX_OUT_FAILED, "avformat_new_stream (webm): out of memory");
        goto out;
    }
    if ((ret = mx_out_pb_open(&oc->pb, path, opt->live_out[0])) < 0) {
        mx_set(o, MX_OUT_FAILED, "opening the WebM output %s: %s", path, av_err2str(ret));
        goto out;
    }
    if ((ret = avformat_write_header(oc, NULL)) < 0) {
        mx_set(o, MX_OUT_FAILED, "avformat_write_header (webm): %s", av_err2str(ret));
        goto out;
    }
    if (copy_packets(&s, oc, map, o) < 0)
        goto out;
    /* The trailer seeks back to fill in the duration and the cues. */
    if ((ret = av_write_trailer(oc)) < 0) {
        mx_set(o, MX_OUT_FAILED, "av_write_trailer (webm): %s", av_err2str(ret));
        goto out;
    }
    mx_set(o, MX_OUT_DONE, "%s", "");
out:
    if (oc && !(oc->oformat->flags & AVFMT_NOFILE))
        mx_out_pb_close(&oc->pb, opt->live_out[0]);
    avformat_free_context(oc);
    mx_src_close(&s);
}
