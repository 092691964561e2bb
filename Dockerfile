# The app in a container, on the CPU: what a Hugging Face Space (Docker SDK, as README.md's front matter
# says) builds and runs, and what any container host can run (docker build -t cifarnets . &&
# docker run -p 8501:8501 cifarnets). docs/deploy.md says how it was checked.
FROM python:3.11-slim

# Spaces run the container as user 1000: the app, its runs/ and its caches live in that user's home.
RUN useradd -m -u 1000 user
USER user
ENV HOME=/home/user PATH=/home/user/.local/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR $HOME/app

# torch and torchvision from PyTorch's CPU-only index, within requirements.txt's bounds: PyPI's Linux
# wheels bring 2.3 GiB of CUDA libraries no CPU host uses, and double the app's memory. Then the rest
# from PyPI, which finds torch already installed.
COPY --chown=user requirements.txt .
RUN grep -E '^torch(vision)?[<>=!~ ]' requirements.txt > torch-requirements.txt \
 && pip install --user --index-url https://download.pytorch.org/whl/cpu -r torch-requirements.txt \
 && pip install --user -r requirements.txt

COPY --chown=user . .

EXPOSE 8501
# Public mode (docs/deploy.md): a visitor's runs and choices stay in their own session, one trainer at a
# time, capped epochs, batches and uploads, no server paths. CIFARNETS_PUBLIC=0 for a private container.
ENV CIFARNETS_PUBLIC=1
# Spaces show the app in an iframe on another domain, where browsers withhold Streamlit's XSRF cookie
# and uploads fail with 403 (huggingface.co/docs/hub/spaces-cookie-limitations): hence the XSRF flag.
# Streamlit's upload cap needs no flag: in public mode the app sets it to CIFARNETS_UPLOAD_MB (ui/guard.py).
CMD ["streamlit", "run", "app.py", "--server.port=8501", "--server.address=0.0.0.0", "--server.enableXsrfProtection=false"]
