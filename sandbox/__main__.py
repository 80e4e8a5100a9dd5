"""``python -m sandbox [--host 127.0.0.1] [--port 5001]``: the sandbox gateway on its own."""

import argparse

from sandbox import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description="Storefront's sandbox payment gateway")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    args = parser.parse_args()
    create_app().run(host=args.host, port=args.port, threaded=True)


if __name__ == "__main__":
    main()
