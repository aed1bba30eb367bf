"""``neural-kmeans serve``: a local web playground that shows the algorithm live.

* :mod:`~neural_kmeans.app.serve.server`: the ASGI application (Starlette, run by uvicorn),
  its guard against foreign origins and hosts, and the command;
* :mod:`~neural_kmeans.app.serve.session`: one page's session, spoken to over a WebSocket;
* :mod:`~neural_kmeans.app.serve.runner`: the fit in a worker thread, paced, paused,
  stepped and cancelled from the page;
* :mod:`~neural_kmeans.app.serve.frames`: what each iteration sends (regions, clusters,
  centroids, centroid images, scores);
* :mod:`~neural_kmeans.app.serve.sources`: the data a page may choose (toy sets, digits,
  MNIST subsets found offline, uploads), checked as the command line checks it;
* :mod:`~neural_kmeans.app.serve.params`: the limits and the run's parameters;
* :mod:`~neural_kmeans.app.serve.exports`: results.json, the GIF and the model file;
* ``static/``: the page (plain HTML, CSS and JavaScript; no third-party code).

Needs the ``serve`` extra: ``pip install 'neural-kmeans[serve]'``.
"""
