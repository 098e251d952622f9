"use strict";
// Charts of the overview and feedback pages. Each <canvas data-chart="KIND" data-src="URL">
// is drawn from the JSON API at URL (fetched once per URL). No inline scripts: the page's
// Content-Security-Policy forbids them. When a chart is drawn its canvas gets data-ready="1".
(function () {
  const COLORS = {
    negative: "#d64545", neutral: "#9aa5b1", positive: "#2f9e62", unsupported: "#e0a526",
    unscored: "#dde2e8", previous: "#52606d", urgency: "#7c5cc4",
  };
  // The volume chart's stacked series, bottom up, with their legend labels. "unsupported":
  // posts in a language no configured model understands (their sentiment is only a guess).
  const VOLUME_SERIES = [
    ["negative", "negative"], ["neutral", "neutral"], ["positive", "positive"],
    ["unsupported", "not understood"], ["unscored", "unscored"],
  ];
  const cache = new Map();

  function load(url) {
    if (!cache.has(url)) {
      cache.set(url, fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`)))));
    }
    return cache.get(url);
  }

  // '2026-11-20T08' → '11-20 08h', '2026-11-20' → '11-20'
  function label(key) {
    return key.length > 10 ? `${key.slice(5, 10)} ${key.slice(11, 13)}h` : key.slice(5);
  }

  // Shades the chart area over each spike's buckets (a few lines instead of a plugin package).
  const spikeShading = {
    id: "spikeShading",
    beforeDatasetsDraw(chart, _args, options) {
      const spikes = options.spikes || [];
      const x = chart.scales.x;
      const area = chart.chartArea;
      if (!spikes.length || !x) return;
      const step = chart.data.labels.length > 1 ? x.getPixelForValue(1) - x.getPixelForValue(0) : 20;
      const ctx = chart.ctx;
      ctx.save();
      ctx.fillStyle = "rgba(214, 69, 69, 0.14)";
      ctx.strokeStyle = "rgba(214, 69, 69, 0.7)";
      for (const s of spikes) {
        const left = x.getPixelForValue(s.first_bucket) - step / 2;
        const right = x.getPixelForValue(s.last_bucket) + step / 2;
        ctx.fillRect(left, area.top, right - left, area.bottom - area.top);
        ctx.strokeRect(left, area.top, right - left, area.bottom - area.top);
      }
      ctx.restore();
    },
  };

  const base = (extra) => Object.assign({
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    interaction: { mode: "index", intersect: false },
  }, extra);

  function volume(canvas, data) {
    const bars = VOLUME_SERIES.map(([name, text]) => ({
      type: "bar", label: text, data: data.series[name] || [], backgroundColor: COLORS[name], stack: "now",
    }));
    const previous = {
      type: "line", label: "total, period before", data: data.series.previous_total, stack: "before",
      borderColor: COLORS.previous, borderDash: [5, 4], borderWidth: 1.5, pointRadius: 0, fill: false,
    };
    return new Chart(canvas, {
      data: { labels: data.buckets.map(label), datasets: [...bars, previous] },
      options: base({
        scales: { x: { stacked: true, ticks: { maxTicksLimit: 14 } }, y: { stacked: true, beginAtZero: true } },
        plugins: { spikeShading: { spikes: data.spikes } },
      }),
      plugins: [spikeShading],
    });
  }

  const percent = (values) => values.map((v) => (v === null ? null : Math.round(v * 1000) / 10));

  function share(canvas, data) {
    return new Chart(canvas, {
      type: "line",
      data: {
        labels: data.buckets.map(label),
        datasets: [
          { label: "negative share %", data: percent(data.series.negative_share), borderColor: COLORS.negative,
            backgroundColor: COLORS.negative, pointRadius: 1.5, spanGaps: true },
          { label: "period before", data: percent(data.series.previous_negative_share), borderColor: COLORS.previous,
            borderDash: [5, 4], borderWidth: 1.5, pointRadius: 0, spanGaps: true },
        ],
      },
      options: base({
        scales: { x: { ticks: { maxTicksLimit: 14 } }, y: { beginAtZero: true, suggestedMax: 50 } },
        plugins: { spikeShading: { spikes: data.spikes } },
      }),
      plugins: [spikeShading],
    });
  }

  function accuracy(canvas, data) {
    return new Chart(canvas, {
      type: "line",
      data: {
        labels: data.periods,
        datasets: [
          { label: "sentiment accuracy %", data: percent(data.sentiment), borderColor: COLORS.positive,
            backgroundColor: COLORS.positive, pointRadius: 4, spanGaps: true },
          { label: "urgency accuracy %", data: percent(data.urgency), borderColor: COLORS.urgency,
            backgroundColor: COLORS.urgency, pointRadius: 4, spanGaps: true },
        ],
      },
      options: base({ scales: { y: { min: 0, max: 100 } } }),
    });
  }

  const BUILDERS = { volume, share, accuracy };

  function draw(canvas) {
    load(canvas.dataset.src)
      .then((data) => {
        const chart = BUILDERS[canvas.dataset.chart](canvas, data);
        const values = chart.data.datasets.flatMap((d) => d.data).filter((v) => v);
        canvas.dataset.points = String(values.length);
        canvas.dataset.ready = "1";
      })
      .catch((error) => {
        canvas.dataset.error = error.message;
        canvas.insertAdjacentText("afterend", `Chart unavailable: ${error.message}`);
      });
  }

  // The overview's "Per" menu offers only what the chosen range can be shown per (the server
  // refuses the rest with a message): other buckets are disabled, and a bucket the new range
  // cannot do becomes that range's default, in plain sight before the form is sent.
  function syncBuckets(form) {
    const allowed = JSON.parse(form.dataset.buckets);
    const defaults = JSON.parse(form.dataset.defaultBuckets);
    const range = form.elements.namedItem("range");
    const bucket = form.elements.namedItem("bucket");
    if (!range || !bucket) return;
    const sync = () => {
      const ok = allowed[range.value] || [];
      for (const option of bucket.options) option.disabled = !ok.includes(option.value);
      if (!ok.includes(bucket.value)) bucket.value = defaults[range.value];
    };
    range.addEventListener("change", sync);
    sync();
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("canvas[data-chart]").forEach(draw);
    document.querySelectorAll("form[data-buckets]").forEach(syncBuckets);
  });
})();
