/* Room charts drawn with the vendored uPlot from /api/rooms/{room}/series: per sensor the mean line with a
   min–max envelope, the standard's band shaded, dew point dashed, door openings, alerts, access sessions and
   the room's climate-control devices' run times (a strip along the bottom) marked. Times are shown in the site's zone. */
(function () {
  'use strict';
  if (!window.uPlot) { return; }
  var COLORS = ['#1f5fa8', '#b35c00', '#2e7d32', '#7b1fa2', '#00838f', '#6d4c41'];
  var tz = document.body.dataset.tz || 'Asia/Shanghai';
  var lang = document.body.dataset.lang || 'zh';

  function markers(u, data) {
    var ctx = u.ctx, top = u.bbox.top, height = u.bbox.height;
    var x0 = u.scales.x.min, x1 = u.scales.x.max;
    function px(t) { return u.valToPos(Math.min(Math.max(t, x0), x1), 'x', true); }
    ctx.save();
    (data.events.sessions || []).forEach(function (s) {
      var a = px(s.start), b = px(s.end === null ? x1 : s.end);
      ctx.fillStyle = 'rgba(46,125,50,0.16)';
      ctx.fillRect(a, top, Math.max(b - a, 2), height);
    });
    ctx.fillStyle = 'rgba(0,131,143,0.6)';
    (data.events.runs || []).forEach(function (r) {
      var a = px(r.start), b = px(r.end === null ? x1 : r.end);
      ctx.fillRect(a, top + height - 6, Math.max(b - a, 2), 6);
    });
    ctx.strokeStyle = 'rgba(120,120,120,0.9)';
    ctx.lineWidth = 1;
    (data.events.door || []).forEach(function (d) {
      var x = px(d.ts);
      ctx.beginPath(); ctx.moveTo(x, top + height); ctx.lineTo(x, top + height - 10); ctx.stroke();
    });
    ctx.strokeStyle = 'rgba(179,38,30,0.85)';
    ctx.setLineDash([4, 3]);
    (data.events.alerts || []).forEach(function (a) {
      var x = px(a.ts);
      ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
    });
    ctx.restore();
  }

  function band(u, data) {
    var b = data.band || {};
    if (b.low === null && b.high === null) { return; }
    var ctx = u.ctx, y = u.scales.y;
    var hi = b.high === null || b.high === undefined ? y.max : b.high;
    var lo = b.low === null || b.low === undefined ? y.min : b.low;
    var yTop = u.valToPos(Math.min(hi, y.max), 'y', true), yBot = u.valToPos(Math.max(lo, y.min), 'y', true);
    ctx.save();
    ctx.fillStyle = 'rgba(30,125,50,0.08)';
    ctx.fillRect(u.bbox.left, yTop, u.bbox.width, yBot - yTop);
    ctx.strokeStyle = 'rgba(30,125,50,0.7)';
    ctx.setLineDash([6, 4]);
    [b.low, b.high].forEach(function (v) {
      if (v === null || v === undefined) { return; }
      var yy = u.valToPos(v, 'y', true);
      ctx.beginPath(); ctx.moveTo(u.bbox.left, yy); ctx.lineTo(u.bbox.left + u.bbox.width, yy); ctx.stroke();
    });
    ctx.restore();
  }

  function envelope(u, data) {
    // each sensor's min–max per slot, as a light area behind its mean line
    var ctx = u.ctx;
    ctx.save();
    data.series.forEach(function (s, i) {
      ctx.fillStyle = COLORS[i % COLORS.length] + '26';
      var run = [];
      function flush() {
        if (run.length > 0) {
          ctx.beginPath();
          run.forEach(function (k, n) { var x = u.valToPos(data.x[k], 'x', true), y = u.valToPos(s.max[k], 'y', true); if (n === 0) { ctx.moveTo(x, y); } else { ctx.lineTo(x, y); } });
          for (var n = run.length - 1; n >= 0; n--) { var k = run[n]; ctx.lineTo(u.valToPos(data.x[k], 'x', true), u.valToPos(s.min[k], 'y', true)); }
          ctx.closePath(); ctx.fill();
        }
        run = [];
      }
      for (var k = 0; k < data.x.length; k++) { if (s.min[k] === null) { flush(); } else { run.push(k); } }
      flush();
    });
    ctx.restore();
  }

  function draw(el, data) {
    var unit = data.quantity === 'temperature' ? '℃' : '%RH';
    var full = uPlot.fmtDate('{YYYY}-{MM}-{DD} {HH}:{mm}'), hm = uPlot.fmtDate('{HH}:{mm}'), md = uPlot.fmtDate('{MM}-{DD}');
    function local(ts) { return uPlot.tzDate(new Date(ts * 1e3), tz); }
    var cols = [data.x], series = [{ label: lang === 'zh' ? '时间' : 'Time',
      value: function (u, ts) { return ts === null ? '—' : full(local(ts)); } }];
    data.series.forEach(function (s, i) {
      cols.push(s.mean);
      series.push({ label: s.sensor, stroke: COLORS[i % COLORS.length], width: 1.5, value: function (u, v) { return v === null ? '—' : v.toFixed(1) + ' ' + unit; } });
    });
    (data.dew_point || []).forEach(function (s, i) {
      cols.push(s.mean);
      series.push({ label: el.dataset.labelDew + ' ' + s.sensor, stroke: COLORS[i % COLORS.length], width: 1, dash: [5, 4],
                    value: function (u, v) { return v === null ? '—' : v.toFixed(1) + ' ℃'; } });
    });
    var b = data.band || {};
    var opts = {
      width: Math.max(el.clientWidth, 280),
      height: Math.round(Math.min(Math.max(el.clientWidth * 0.38, 180), 300)),
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), tz); },
      series: series,
      legend: { live: true },
      cursor: { points: { show: false } },
      scales: { y: { range: function (u, min, max) {
        var lo = Math.min(min === null ? Infinity : min, b.low === null || b.low === undefined ? Infinity : b.low);
        var hi = Math.max(max === null ? -Infinity : max, b.high === null || b.high === undefined ? -Infinity : b.high);
        if (!isFinite(lo) || !isFinite(hi)) { return [0, 1]; }
        var pad = Math.max((hi - lo) * 0.08, 0.5);
        return [Math.floor(lo - pad), Math.ceil(hi + pad)];
      } } },
      axes: [{ values: function (u, splits) {
        var span = u.scales.x.max - u.scales.x.min;
        return splits.map(function (ts) {
          var d = local(ts);
          if (span > 3 * 86400) { return md(d); }
          return d.getHours() === 0 && d.getMinutes() === 0 ? md(d) : hm(d);
        });
      } }, { values: function (u, vals) { return vals.map(function (v) { return v + ''; }); }, label: unit }],
      hooks: { drawClear: [function (u) { band(u, data); envelope(u, data); }], draw: [function (u) { markers(u, data); }] }
    };
    el.textContent = '';
    var plot = new uPlot(opts, cols, el);
    el.dataset.points = String(data.points);
    el.dataset.drawn = '1';
    window.addEventListener('resize', function () {
      plot.setSize({ width: Math.max(el.clientWidth, 280), height: opts.height });
    });
  }

  document.querySelectorAll('.chart[data-room]').forEach(function (el) {
    var width = Math.min(Math.max(Math.round(el.clientWidth), 200), 2000);
    var url = '/api/rooms/' + encodeURIComponent(el.dataset.room) + '/series?quantity=' + el.dataset.quantity +
      '&range=' + el.dataset.range + '&width=' + width;
    fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (data) {
        if (!data.series.length) { el.textContent = lang === 'zh' ? '此时间范围内没有数据' : 'No data in this range'; el.dataset.drawn = '0'; return; }
        draw(el, data);
      })
      .catch(function (e) { el.textContent = String(e); });
  });
})();
