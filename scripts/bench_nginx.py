"""nginx in front of a server under test, for the nginx-* scenarios of scripts/bench.py:
uwsgi_pass for rwsgi and uWSGI, proxy_pass with a keep-alive upstream pool for the others.
"""

from bench_common import HOST, WORK, Proc, StartError, free_port, http_get, wait_ready

NGINX_CONF = '''\
daemon off;
master_process on;
worker_processes 1;
error_log {d}/error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream backend {{
        server {host}:{backend};
        {keepalive}
    }}
    server {{
        listen {host}:{port};
        location / {{
{location}
        }}
    }}
}}
'''
UWSGI_LOCATION = '''\
            uwsgi_pass backend;
            uwsgi_param QUERY_STRING $query_string;
            uwsgi_param REQUEST_METHOD $request_method;
            uwsgi_param CONTENT_TYPE $content_type;
            uwsgi_param CONTENT_LENGTH $content_length;
            uwsgi_param REQUEST_URI $request_uri;
            uwsgi_param PATH_INFO $document_uri;
            uwsgi_param DOCUMENT_ROOT $document_root;
            uwsgi_param SERVER_PROTOCOL $server_protocol;
            uwsgi_param REQUEST_SCHEME $scheme;
            uwsgi_param REMOTE_ADDR $remote_addr;
            uwsgi_param REMOTE_PORT $remote_port;
            uwsgi_param SERVER_PORT $server_port;
            uwsgi_param SERVER_NAME $server_name;'''  # as Debian's /etc/nginx/uwsgi_params
PROXY_LOCATION = '''\
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;'''


def start_nginx(backend_port, uwsgi_proto, app):
    d = WORK / "nginx"
    d.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        port = free_port()
        conf = NGINX_CONF.format(d=d, host=HOST, backend=backend_port, port=port,
                                 keepalive="" if uwsgi_proto else "keepalive 32;",
                                 location=UWSGI_LOCATION if uwsgi_proto else PROXY_LOCATION)
        (d / "nginx.conf").write_text(conf)
        proc = Proc(["nginx", "-p", d, "-c", d / "nginx.conf"], WORK / "logs" / "nginx.log")
        # 502/504: nginx is up but cannot reach the backend yet
        if wait_ready(proc, lambda: 0 < (http_get(port, app.path) or (0,))[0] < 502, 15.0):
            return proc, port
        reason = proc.tail()
        proc.stop()
        if "in use" not in reason.lower():
            raise StartError(f"nginx: {reason or 'not ready'}")
    raise StartError("nginx: could not bind a free port")
