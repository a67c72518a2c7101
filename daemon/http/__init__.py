"""The HTTP face: the OpenAI audio API, whisper-asr-webservice's ``/asr``, the jobs API and
the pages, served by :mod:`daemon.http.server`; thin, it calls the library in :mod:`daemon.app`."""
