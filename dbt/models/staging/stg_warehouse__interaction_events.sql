{#- The click and page-view events, the only ones the recall model learns from. -#}
with

source as (

    select * from {{ source('warehouse', 'sessionized_events') }}
    where event_type in ('click', 'page_view')

),

renamed as (

    select
        event_id,
        user_id,
        session_key,
        cast(ts as bigint) as ts,
        cast(ds as date) as ds,
        event_type,
        request_id,
        cast(item_id as bigint) as item_id,
        cast(coalesce(actions.cart, false) as boolean) as cart,
        cast(coalesce(actions.buy, false) as boolean) as buy

    from source

)

select * from renamed
