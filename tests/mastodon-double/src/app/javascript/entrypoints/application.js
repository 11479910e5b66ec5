// Web client of the Mastodon test double: shows the instance the page came from.
fetch('/api/v1/instance')
  .then((response) => response.json())
  .then((instance) => {
    document.body.insertAdjacentHTML('beforeend', `<p>${instance.uri} ${instance.version}</p>`);
  });
